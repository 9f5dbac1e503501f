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
    format_llava_official,
    format_ocr_tokens,
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
        ("visdial", ["question"]),
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


def test_scienceqa_context_wrapper_only_when_non_empty():
    with_hint = format_instruction(TEMPLATES["scienceqa"], question="Q?", choices=["a", "b"], context="A hint")
    without = format_instruction(TEMPLATES["scienceqa"], question="Q?", choices=["a", "b"], context="")
    body = "Given the image, choose the correct option for the following question. Question: Q? \n Options: (a) a (b) b"
    assert without == body
    assert with_hint == "Context: A hint. " + body  # the official my_mmlm_vicuna.py:517 wrapper, verbatim
    lavis = format_instruction(TEMPLATES["scienceqa"], question="Q?", choices=["a", "b"], context="A hint",
                               wrappers="lavis")
    assert lavis == "context: A hint. " + body  # LAVIS main's _predict_class wrapper, verbatim


def test_visdial_caption_and_history_wrappers():
    assert format_dialog_history([]) == ""
    turns = [("is it big", "no"), ("is it old", "yes")]
    assert format_dialog_history(turns) == "q: is it big a: no q: is it old a: yes"
    text = format_instruction(
        TEMPLATES["visdial"], question="is it black", caption="a cat", turns=[("is it big", "no")]
    )
    assert text == (  # the official history wrapper: capitalized, a space after the newline
        'This image has the caption "a cat". Dialog history: q: is it big a: no\n'
        ' Question: is it black \n Short answer:'
    )
    lavis = format_instruction(
        TEMPLATES["visdial"], question="is it black", caption="a cat", turns=[("is it big", "no")], wrappers="lavis"
    )
    assert lavis == (
        'This image has the caption "a cat". dialog history: q: is it big a: no\nQuestion: is it black \n Short answer:'
    )
    for style in ("official", "lavis"):
        first_round = format_instruction(TEMPLATES["visdial"], question="is it black", caption="a cat", turns=[],
                                         wrappers=style)
        assert first_round == 'This image has the caption "a cat". Question: is it black \n Short answer:'


def test_wrappers_nest_in_predict_class_order():
    text = format_instruction("P {question}", question="q", context="ctx", caption="cap", turns=[("a", "b")])
    assert text == 'This image has the caption "cap". Dialog history: q: a a: b\n Context: ctx. P q'
    text = format_instruction("P {question}", question="q", context="ctx", caption="cap", turns=[("a", "b")],
                              wrappers="lavis")
    assert text == 'This image has the caption "cap". dialog history: q: a a: b\ncontext: ctx. P q'


def test_unknown_wrapper_style_is_named():
    with pytest.raises(ValueError, match="wrappers must be one of official, lavis, got 'LAVIS'"):
        format_instruction(TEMPLATES["gqa"], question="q", wrappers="LAVIS")


def test_template_naming_a_wrapped_field_gets_it_in_place():
    text = format_instruction("{context} | {history} | {caption} | {question}", question="q", context="c",
                              caption="cap", turns=[("a", "b")])
    assert text == "c | q: a a: b | cap | q"


def _lavis_wrap(prompt: str, **fields) -> str:
    """LAVIS main's own prompt-wrapping lines of ``Blip2VicunaInstruct._predict_class`` run on one sample."""
    import inspect
    import textwrap

    from lavis_reference import _load

    source = inspect.getsource(_load("blip2_vicuna_instruct").Blip2VicunaInstruct._predict_class)
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if "'context' in samples.keys()" in line)
    end = next(i for i, line in enumerate(lines) if "This image has the caption" in line)
    scope = {"samples": {k: [v] for k, v in fields.items()}, "prompt": [prompt]}
    exec(textwrap.dedent("\n".join(lines[start : end + 1])), scope)  # LAVIS's own lines, one scope (comprehensions)
    return scope["prompt"][0]


@pytest.mark.parametrize(
    "name, fields, wrapped",
    [
        ("scienceqa", {"question": "Which is hot?", "choices": ["sun", "ice"]}, {"context": "Think of summer."}),
        ("visdial", {"question": "is it red"}, {"caption": "a red bus", "history": "q: is it big a: yes"}),
        ("visdial", {"question": "is it red"}, {"caption": "a red bus"}),
    ],
)
def test_wrappers_equal_lavis_main_predict_class(name, fields, wrapped):
    turns = [("is it big", "yes")] if "history" in wrapped else []
    ours = format_instruction(
        TEMPLATES[name], context=wrapped.get("context"), caption=wrapped.get("caption"), turns=turns,
        wrappers="lavis", **fields
    )
    body = format_instruction(TEMPLATES[name], **fields)
    assert ours == _lavis_wrap(body, **wrapped)


def _official_wrap(prompt: str, **fields) -> str:
    """The official ``_predict_class`` wrapping of a batch of two (no ``bs == 1`` re-listing), transcribed from
    Zhudongsheng75/VisLingInstruct vislinginstruct/models/my_mmlm_vicuna.py:514-526 (my_mmlm_flant5.py:490-502 is
    the same); the code is not available offline, so its f-strings are copied here verbatim."""
    samples = {k: [v, v] for k, v in fields.items()}
    prompt = [prompt, prompt]
    if 'context' in samples.keys() and samples['context'] != '':
        prompt = [f'Context: {samples["context"][i]}. {prompt[i]}' for i in range(len(prompt))]
    if 'history' in samples.keys() and samples['history'][0] != '':
        prompt = [f'Dialog history: {samples["history"][i]}\n {prompt[i]}' for i in range(len(prompt))]
    if 'caption' in samples.keys() and samples['caption'][0] != '':
        prompt = [f'This image has the caption "{samples["caption"][i]}". {prompt[i]}' for i in range(len(prompt))]
    return prompt[0]


@pytest.mark.parametrize(
    "name, fields, wrapped",
    [
        ("scienceqa", {"question": "Which is hot?", "choices": ["sun", "ice"]}, {"context": "Think of summer."}),
        ("visdial", {"question": "is it red"}, {"caption": "a red bus", "history": "q: is it big a: yes"}),
        ("visdial", {"question": "is it red"}, {"caption": "a red bus"}),
    ],
)
def test_default_wrappers_equal_the_official_predict_class(name, fields, wrapped):
    turns = [("is it big", "yes")] if "history" in wrapped else []
    ours = format_instruction(
        TEMPLATES[name], context=wrapped.get("context"), caption=wrapped.get("caption"), turns=turns, **fields
    )
    assert ours == _official_wrap(format_instruction(TEMPLATES[name], **fields), **wrapped)


def test_ocr_tokens_first_30_joined_by_comma():
    tokens = [f"w{i}" for i in range(45)]
    assert format_ocr_tokens(tokens) == ", ".join(tokens[:30])
    text = format_instruction(TEMPLATES["textvqa"], question="q?", ocr_tokens=tokens)
    assert "w29" in text and "w30" not in text


def test_llava_instruction_history():
    assert format_llava_instruction([], "What is it?") == "What is it?"
    assert format_llava_instruction([("Q1?", "A1."), ("Q2?", "A2.")], "Q3?") == "Q: Q1?\nA: A1.\nQ: Q2?\nA: A2.\nQ3?"


def test_llava_official_text_keeps_a_lone_question_over_the_budget():
    """The official loop would index a second "Qusetion:" that does not exist (IndexError); we keep the question."""
    question = " ".join(["why"] * 450)
    assert format_llava_official([("human", question)]) == f"Qusetion: {question} \n Answer: "
    # an earlier long turn is still dropped before the lone question is reached
    text = format_llava_official([("human", question), ("gpt", "A."), ("human", "Q?")])
    assert text == "Qusetion: Q? \n Answer: "


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


def test_vli_instruction_processor_wrapper_styles():
    cls = registry.get_processor_class("vli_instruction")
    fields = dict(question="Q?", choices=["a", "b"], context="A hint")
    official = cls.from_config(OmegaConf.create({"template": "scienceqa"}))
    lavis = cls.from_config(OmegaConf.create({"template": "scienceqa", "wrappers": "lavis"}))
    assert official(**fields).startswith("Context: A hint. ") and lavis(**fields).startswith("context: A hint. ")
    with pytest.raises(ValueError, match="got 'Lavis' \\(text_processor key 'wrappers'\\)"):
        cls.from_config(OmegaConf.create({"template": "scienceqa", "wrappers": "Lavis"}))
