"""The chat engine: the history the LLM reads is the LLaVA builder's text, the budget drops the oldest turns,
streamed answers equal non-streamed greedy ones, and the three columns equal ``generate`` with their switches."""
import json
from pathlib import Path

import pytest
import torch
from lavis.common.config import Config
from lavis.common.registry import registry
from omegaconf import OmegaConf
from PIL import Image

from conftest import build_tiny
from lavis_vislinginstruct.chat.engine import COLUMNS, ChatEngine, Conversation, Turn, chat_decoding, new_columns
from lavis_vislinginstruct.inference.rows import get_row
from lavis_vislinginstruct.models.loading import load_with_options
from lavis_vislinginstruct.processors.templates import format_llava_instruction, normalize_text

DECODING = chat_decoding(max_new_tokens=6)
# the same settings in generate's (LAVIS) terms
GENERATE = dict(use_nucleus_sampling=False, num_beams=1, max_length=6, min_length=1, top_p=0.9,
                repetition_penalty=1.0, length_penalty=1.0, temperature=1.0)


@pytest.fixture
def image():
    g = torch.Generator().manual_seed(3)
    return Image.fromarray((torch.rand(40, 40, 3, generator=g) * 255).to(torch.uint8).numpy())


def answer_after(model, samples, prompt, decoding, streamer=None, prompt_lookup=0, cmaa=None, projection="finetuned"):
    """The model's answer to ``prompt`` after the visual prefix of ``samples`` (its stages called directly)."""
    prefix, mask = model.visual_prefix(model.encode_image(samples["image"]), samples["text_input"], cmaa, projection)
    return model.adapter.generate(prefix, mask, [prompt], decoding, streamer=streamer, prompt_lookup=prompt_lookup)[0]


def engine_for(arch, budget=None, **overrides):
    model, vis, _ = load_with_options(arch, "tiny", [f"{k}={v}" for k, v in overrides.items()])
    return ChatEngine(model, vis["eval"], history_budget=budget)


def build_llava(root: Path, records, expand_turns=True):
    """The LLaVA-Instruct-150K training samples of ``records`` through the registered builder (training's path)."""
    path = root / "llava_instruct_150k" / "llava_instruct_150k.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    for record in records:
        image = root / "coco" / "images" / "train2017" / record["image"]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(image)
    name = "vli_llava_instruct_150k"
    # the chat engine writes the `qa` format (chat/engine.py, step 2); the builder's default is now the official one
    options = {"datasets": {name: {"options": {"expand_turns": expand_turns, "text_format": "qa"}}}}
    cfg = Config.build_dataset_config(OmegaConf.create(options))
    return registry.get_builder_class(name)(cfg.datasets[name]).build_datasets()["train"]


def test_history_is_the_llava_builders_text(arch, image, cache_root):
    engine = engine_for(arch, budget=10_000)
    conv = Conversation(image, "x.jpg")
    asked = ["What  is in the  picture?", "  And its colour?\t", "Is it\r\nbig?"]
    for question in asked:
        engine.ask(conv, question, decoding=DECODING)
    assert [t.history_turns for t in conv.turns] == [0, 1, 2] and all(t.dropped_turns == 0 for t in conv.turns)
    # the same conversation as a LLaVA record (first question with its <image> marker, as in the official file)
    values = []
    for i, (question, turn) in enumerate(zip(asked, conv.turns)):
        values += [{"from": "human", "value": ("<image>\n" if i == 0 else "") + question},
                   {"from": "gpt", "value": turn.answer if turn.answer.strip() else "(empty)"}]
    if any(not t.answer.strip() for t in conv.turns):  # an empty answer is no valid LLaVA turn
        pytest.skip("the tiny model gave an empty answer")
    dataset = build_llava(Path(cache_root), [{"id": "c1", "image": "x.jpg", "conversations": values}])
    assert [dataset[i]["text_input"] for i in range(len(dataset))] == [t.prompt for t in conv.turns]
    # the Q-Former read the current question only
    assert [t.instruction for t in conv.turns] == ["What is in the picture?", "And its colour?", "Is it\nbig?"]


def test_budget_drops_the_oldest_turns_and_says_so(image):
    engine = engine_for("vislinginstruct_vicuna", budget=40)
    conv = Conversation(image, "x.jpg")
    conv.turns = [Turn(question=f"question number {i}?", answer=f"answer {i} " + "word " * 4) for i in range(6)]
    question = "What now?"
    full = format_llava_instruction(conv.history(), question)
    assert engine.prompt_tokens(full) > 40
    events = list(engine.stream(conv, question, decoding=DECODING))
    turn = conv.turns[-1]
    history = [(t.question, normalize_text(t.answer)) for t in conv.turns[:-1]]
    kept = history[turn.dropped_turns:]
    assert turn.dropped_turns > 0 and turn.history_turns == len(kept) == 6 - turn.dropped_turns
    assert turn.prompt == format_llava_instruction(kept, question)  # the newest turns kept, in order
    assert engine.prompt_tokens(turn.prompt) <= 40
    # minimal: one more (older) turn would not fit
    assert engine.prompt_tokens(format_llava_instruction(history[turn.dropped_turns - 1:], question)) > 40
    assert turn.prompt_tokens == engine.prompt_tokens(turn.prompt)
    notice = [e.text for e in events if e.kind == "notice"]
    assert notice and f"oldest {turn.dropped_turns} of 6" in notice[0] and turn.notes == notice


def test_question_longer_than_budget_is_noted(image):
    engine = engine_for("vislinginstruct_vicuna", budget=5)
    conv = Conversation(image, "x.jpg")
    turn = engine.ask(conv, "a question that is certainly longer than five tokens", decoding=DECODING)
    assert any("over the history budget of 5" in n for n in turn.notes)


@pytest.mark.parametrize("penalty", [1.0, 1.2])  # Vicuna: decoding.greedy_decode, then HF generate (a penalty)
def test_streaming_equals_non_streamed_greedy(arch, image, penalty):
    engine = engine_for(arch)
    conv = Conversation(image, "x.jpg")
    decoding = chat_decoding(max_new_tokens=12, repetition_penalty=penalty)
    for question in ("Describe the image.", "What else?"):
        events = list(engine.stream(conv, question, decoding=decoding))
        tokens = [e.text for e in events if e.kind == "token"]
        turn = events[-1].turn
        samples = {"image": engine.image_tensor(image), "text_input": [question]}
        kwargs = dict(GENERATE, max_length=12, repetition_penalty=penalty)
        if turn.history_turns == 0:
            expected = engine.model.generate(samples, **kwargs)[0]
        else:
            expected = answer_after(engine.model, samples, turn.prompt, decoding)
        assert turn.answer == expected
        assert len(tokens) >= 2, tokens  # arrived in pieces, as generated
        assert "".join(tokens).split() == expected.split()


def test_vicuna_streamer_reads_id_0_as_generate_does():
    model = build_tiny("vislinginstruct_vicuna").eval()
    tok = model.adapter.tokenizer
    ids = tok("red square left", add_special_tokens=False).input_ids
    ids = ids[:1] + [0] + ids[1:]
    streamer = model.adapter.make_streamer(timeout=5)
    streamer.put(torch.zeros(1, 0, dtype=torch.long))  # the (empty) prompt of an inputs_embeds generate
    for i in ids:
        streamer.put(torch.tensor([i]))
    streamer.end()
    streamed = "".join(streamer)
    unmapped = tok.decode(ids, skip_special_tokens=True)
    assert streamed.strip() == tok.decode([2 if i == 0 else i for i in ids], skip_special_tokens=True).strip()
    assert streamed.strip() != unmapped.strip()  # without the mapping, id 0 would show as text


def test_beams_answer_whole_and_decoding_is_checked(image):
    engine = engine_for("vislinginstruct_vicuna")
    conv = Conversation(image, "x.jpg")
    events = list(engine.stream(conv, "Describe it.", decoding=chat_decoding(max_new_tokens=5, num_beams=2)))
    assert not [e for e in events if e.kind == "token"]
    samples = {"image": engine.image_tensor(image), "text_input": ["Describe it."]}
    assert events[-1].turn.answer == engine.model.generate(samples, **dict(GENERATE, max_length=5, num_beams=2))[0]
    for bad, message in ((dict(temperature=-1), "temperature must be >= 0"), (dict(top_p=0), "top_p"),
                         (dict(max_new_tokens=0), "max_new_tokens"), (dict(num_beams=0), "num_beams")):
        with pytest.raises(ValueError, match=message):
            chat_decoding(**bad)


@pytest.mark.parametrize("question, message", [("   ", "empty message"), ("<image>", "empty message")])
def test_bad_questions(image, question, message):
    engine = engine_for("vislinginstruct_vicuna")
    with pytest.raises(ValueError, match=message):
        engine.ask(Conversation(image), question)
    with pytest.raises(ValueError, match="no image"):
        engine.ask(Conversation(), "hi")
    with pytest.raises(ValueError, match="AIO mode must be one of off, rewrite, full"):
        engine.ask(Conversation(image), "hi", aio="fancy")


# ----------------------------------------------------------------------------------- the three columns


def test_columns_equal_generate_with_their_switches(arch, weights, image):
    base, finetuned = weights
    engine = engine_for(arch, checkpoint=base, finetuned=finetuned)
    model = engine.model
    params = {n: p.data_ptr() for n, p in model.named_parameters()}
    columns = new_columns(image, "x.jpg")
    questions = ["What is in the picture?", "What colour is it?"]
    for q in questions:
        list(engine.compare(columns, q, chat_decoding(max_new_tokens=6)))
    # references: separately built models with the matching switches
    vanilla_ref = engine_for(arch, checkpoint=base, **{"cmaa.enabled": False}).model
    ema_ref = engine_for(arch, checkpoint=base, finetuned=finetuned).model
    refs = {"vanilla": vanilla_ref, "ema": ema_ref, "ema_aio": ema_ref}
    pixels = engine.image_tensor(image)
    for key, (_, row) in COLUMNS.items():
        aio = get_row(row).aio
        first, second = columns[key].turns
        assert first.row == row and first.aio == aio
        ref = refs[key]
        assert first.answer == ref.generate({"image": pixels, "text_input": [questions[0]]}, aio=aio, **GENERATE)[0]
        if aio == "off":
            used = questions[1]
        else:
            (trace,) = ref.pipeline(aio).optimize({"image": pixels, "text_input": [questions[1]]})
            used = trace.used
            same = {k: v for k, v in trace.to_dict().items() if k != "timings"}
            assert {k: v for k, v in second.trace.items() if k != "timings"} == same
            assert second.trace["used"] == used and second.trace["initial"] == questions[1]
        prompt = format_llava_instruction([(first.question, normalize_text(first.answer))], used)
        assert second.prompt == prompt
        expected = answer_after(ref, {"image": pixels, "text_input": [used]}, prompt, chat_decoding(max_new_tokens=6))
        assert second.answer == expected
    # one copy of the weights, unchanged by any call; only the projection kept twice
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == params
    torch.testing.assert_close(model.proj.weight, ema_ref.proj.weight)
    extra = {n: b.numel() for n, b in model.named_buffers() if n.startswith("base_proj")}
    assert sum(extra.values()) == sum(p.numel() for p in model.proj.parameters())
    assert not any(k.startswith("base_proj") for k in model.state_dict())


def test_rows_by_argument_match_separate_models(arch, weights, image):
    base, finetuned = weights
    model = engine_for(arch, checkpoint=base, finetuned=finetuned).model
    vanilla_ref = engine_for(arch, checkpoint=base, **{"cmaa.enabled": False}).model
    ema_ref = engine_for(arch, checkpoint=base, finetuned=finetuned).model
    pixels = torch.rand(1, 3, 32, 32)
    embeds = model.encode_image(pixels)
    got = model.visual_prefix(embeds, ["what is it"], cmaa=False, projection="base")[0]
    torch.testing.assert_close(got, vanilla_ref.visual_prefix(embeds, ["what is it"])[0])
    got = model.visual_prefix(embeds, ["what is it"], cmaa=True, projection="finetuned")[0]
    torch.testing.assert_close(got, ema_ref.visual_prefix(embeds, ["what is it"])[0])
    assert got.shape[1] == 2 * model.cfg.qformer.num_query_token
    torch.testing.assert_close(model.visual_prefix(embeds, ["what is it"])[0], got)  # the config: CMAA on, loaded
    with pytest.raises(ValueError, match="projection must be one of"):
        model.visual_prefix(embeds, ["x"], projection="instructblip")
    # a model built with CMAA off computes it when a call turns it on
    off = engine_for(arch, checkpoint=base, **{"cmaa.enabled": False}).model
    assert off.visual_prefix(embeds, ["x"], cmaa=True)[0].shape[1] == 2 * off.cfg.qformer.num_query_token
    assert off.visual_prefix(embeds, ["x"])[0].shape[1] == off.cfg.qformer.num_query_token


class _Recorder:
    """A streamer that keeps what it is fed."""

    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, value):
        self.puts.append(value.reshape(-1).tolist())

    def end(self):
        self.ended = True


def test_greedy_decode_feeds_a_streamer_draft_tokens_included(image):
    engine = engine_for("vislinginstruct_vicuna")
    model = engine.model
    samples = {"image": engine.image_tensor(image), "text_input": ["red red red red"]}
    decoding = chat_decoding(max_new_tokens=16)
    recorder = _Recorder()
    answer = answer_after(model, samples, "red red red red red red", decoding, streamer=recorder, prompt_lookup=3)
    assert recorder.puts[0] == [] and recorder.ended  # the (empty) prompt first, as HF generate
    streamed = [t for put in recorder.puts[1:] for t in put]
    tok = model.adapter.tokenizer
    assert tok.decode([2 if t == 0 else t for t in streamed], skip_special_tokens=True).strip() == answer
    assert answer == answer_after(model, samples, "red red red red red red", decoding, prompt_lookup=3)
    two = {"image": samples["image"].repeat(2, 1, 1, 1), "text_input": ["a", "b"]}
    with pytest.raises(ValueError, match="a streamer follows one sample, got a batch of 2"):
        engine.pipeline(engine.row()).generate(two, decoding, prompts=["a", "b"], streamer=_Recorder())
