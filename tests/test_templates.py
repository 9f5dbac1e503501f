"""Table 4 templates (VisLingInstruct, NAACL 2024) and the vli_text / vli_instruction processors."""

import pytest
from lavis.common.registry import registry
from omegaconf import OmegaConf

import lavis_vislinginstruct.processors  # noqa: F401  (registers the vli_* processors)
from lavis_vislinginstruct.processors.templates import (
    TEMPLATES,
    format_dialog_history,
    format_instruction,
    format_llava_instruction,
    format_options,
    normalize_text,
    placeholders,
)

BENCHMARKS = {
    "flickr30k",
    "nocaps",
    "vsr",
    "gqa",
    "visdial",
    "iconqa",
    "vizwiz",
    "textvqa",
    "scienceqa",
    "hateful_memes",
}


def test_every_benchmark_has_a_template_without_image_marker():
    assert set(TEMPLATES) == BENCHMARKS
    for template in TEMPLATES.values():
        assert "<image" not in template.lower()
        assert "{}" not in template and "{ }" not in template


@pytest.mark.parametrize(
    "name, fields",
    [
        ("flickr30k", []),
        ("vsr", ["statement"]),
        ("gqa", ["question"]),
        ("visdial", ["history", "question"]),
        ("iconqa", ["question", "options"]),
        ("vizwiz", ["question"]),
        ("textvqa", ["ocr", "question"]),
        ("scienceqa", ["question", "options"]),
        ("hateful_memes", ["text"]),
    ],
)
def test_template_placeholders(name, fields):
    assert placeholders(TEMPLATES[name]) == fields


def test_table4_wording_verbatim():
    assert TEMPLATES["nocaps"] == "A short image description:"
    assert TEMPLATES["gqa"] == "Question: {question} \n Short answer:"
    assert TEMPLATES["iconqa"] == "Question: {question} Options: {options} \n Answer:"
    assert TEMPLATES["hateful_memes"] == "This is an image with: {text} written on it. Is it hateful?"
    assert TEMPLATES["vsr"] == "Based on the image, is this statement true or false? {statement}"
    assert TEMPLATES["vizwiz"] == (
        "Answer the question based on the image. Reply in one phrase/word or say 'unanswerable'. "
        "Question: {question} \n Short answer:"
    )


def test_textvqa_template_has_the_question_table4_forgot():
    # Table 4 prints "OCR tokens: {} Question: \n Short answer:" (typo); the question must be in the instruction.
    text = format_instruction(TEMPLATES["textvqa"], question="what brand?", ocr_tokens=["ACME", "COLA"])
    assert text == "OCR tokens: ACME, COLA Question: what brand? \n Short answer:"


def test_format_options_letters_choices():
    assert format_options(["apple", "banana", "pineapple"]) == "(a) apple (b) banana (c) pineapple"
    assert format_options(["x"]) == "(a) x"
    with pytest.raises(ValueError):
        format_options([])
    with pytest.raises(ValueError):
        format_options([str(i) for i in range(27)])


def test_scienceqa_context_prefix_only_when_non_empty():
    with_hint = format_instruction(TEMPLATES["scienceqa"], question="Q?", choices=["a", "b"], context="A hint.")
    without = format_instruction(TEMPLATES["scienceqa"], question="Q?", choices=["a", "b"], context="")
    body = "Given the image, choose the correct option for the following question. Question: Q? \n Options: (a) a (b) b"
    assert without == body
    assert with_hint == "Context: A hint.\n" + body


def test_visdial_history_and_gqa_instruction():
    assert format_dialog_history("a cat", []) == "Caption: a cat"
    text = format_instruction(
        TEMPLATES["visdial"], question="is it black", caption="a cat", turns=[("is it big", "no")]
    )
    assert text == "Dialog history: Caption: a cat Q: is it big A: no\nQuestion: is it black \n Short answer:"


def test_llava_instruction_history():
    assert format_llava_instruction([], "What is it?") == "What is it?"
    assert format_llava_instruction([("Q1?", "A1."), ("Q2?", "A2.")], "Q3?") == "Q: Q1?\nA: A1.\nQ: Q2?\nA: A2.\nQ3?"


def test_missing_field_is_a_clear_error():
    with pytest.raises(ValueError, match="question"):
        format_instruction(TEMPLATES["gqa"], statement="x")


def test_normalize_text_only_touches_whitespace():
    assert normalize_text("  The KITE  is\tRed!  ") == "The KITE is Red!"
    assert normalize_text("Line one.  \r\nLine two.\n\n\n\n3. Three") == "Line one. \nLine two.\n\n3. Three"
    assert normalize_text("Question: x? \n Short answer:") == "Question: x? \n Short answer:"  # Table 4 intact
    assert normalize_text("code:\n    indented  line") == "code:\n    indented line"
    long_text = " ".join(["Word."] * 80)
    assert normalize_text(long_text) == long_text


def test_vli_text_processor_keeps_case_punctuation_and_length():
    proc = registry.get_processor_class("vli_text").from_config(OmegaConf.create({"name": "vli_text"}))
    answer = "The Dog (a Labrador) is #1: it runs; jumps! " + "and keeps going " * 30
    assert proc(answer) == normalize_text(answer)
    assert len(proc(answer).split()) > 50


def test_vli_instruction_processor_named_and_custom_templates():
    cls = registry.get_processor_class("vli_instruction")
    named = cls.from_config(OmegaConf.create({"name": "vli_instruction", "template": "gqa"}))
    assert named(question="Why?") == "Question: Why? \n Short answer:"
    custom = cls.from_config(OmegaConf.create({"template": "Q: {question} A:"}))
    assert custom(question="Why?") == "Q: Why? A:"
    with pytest.raises(ValueError, match="template"):
        cls.from_config(OmegaConf.create({"name": "vli_instruction"}))
