"""AIO as a component: one-way imports, the rewrite cache and its key, the typed trace and its one formatter."""
import ast
import json
from pathlib import Path

import pytest

from lavis_vislinginstruct.aio.config import AIOCfg
from lavis_vislinginstruct.aio.optimizer import InstructionOptimizer
from lavis_vislinginstruct.aio.trace import AIOTrace, format_trace, summarize

AIO_DIR = Path(__file__).resolve().parents[1] / "lavis_vislinginstruct" / "aio"


def imported_modules(path: Path):
    """Absolute names of everything a module imports (relative imports resolved against its package)."""
    package = ["lavis_vislinginstruct", "aio"]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.append(".".join(base + ([node.module] if node.module else [])))
    return names


def test_nothing_in_aio_imports_the_model_package():
    files = sorted(AIO_DIR.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        bad = [m for m in imported_modules(path) if m.startswith("lavis_vislinginstruct.models")]
        assert not bad, f"{path.name} imports {bad}"
    assert imported_modules(AIO_DIR / "optimizer.py").count("lavis_vislinginstruct.aio.trace") == 1  # resolution works


class FakeBackend:
    """Counts rewrites; outputs depend on the prompt only."""

    def __init__(self):
        self.rewrite_batches = []
        self.token = 0

    def generate(self, prefix, prompts, decoding):
        if prefix is None:
            self.rewrite_batches.append(list(prompts))
            return [f"R({p[-12:]}|{decoding['max_new_tokens']})" for p in prompts]
        return ["optimized"] * len(prompts)

    def llm_token_counts(self, texts):
        return [len(t.split()) for t in texts]

    def qformer_token_budget(self, texts):
        return [(len(t.split()), 100) for t in texts]

    def generation_room(self, prompts, visual):
        return None

    def cache_token(self):
        return self.token


class LongOutputBackend(FakeBackend):
    """Generates exactly as many one-word tokens as allowed (every output reaches its cap), in a context of
    ``context`` tokens."""

    def __init__(self, context=None):
        super().__init__()
        self.context, self.caps = context, []

    def generate(self, prefix, prompts, decoding):
        self.caps.append(decoding["max_new_tokens"])
        return [" ".join(["w"] * decoding["max_new_tokens"])] * len(prompts)

    def llm_token_counts(self, texts):
        return [len(t.split()) + 1 for t in texts]  # one special token, as the LLM tokenizers add

    def generation_room(self, prompts, visual):
        if self.context is None:
            return None
        return self.context - max(n for n in self.llm_token_counts(prompts)) - (32 if visual else 0)

    def visual_prefix(self, features, rows, texts):
        return list(rows)

    def prefix_rows(self, prefix, rows):
        return [prefix[r] for r in rows]

    def continuation_nll(self, prefix, prompts, continuations):
        return [1.0 + len(c) for c in continuations]


def test_a_long_instruction_may_be_replaced_by_one_as_long_and_a_capped_output_is_counted():
    """The old cap of 160 new tokens cut any optimized instruction longer than about 125 tokens, silently."""
    long = " ".join(["word"] * 299)  # 300 tokens with the special token
    backend = LongOutputBackend()
    traces = InstructionOptimizer(AIOCfg(mode="full", guard="none"), backend).optimize([0], [long])
    assert backend.caps == [304, 304]  # rewrite and comparison: as long as the instruction + 4 (160 before)
    (trace,) = traces
    assert trace.truncated == {"qformer": [299, 100], "rewrite": [304, 304], "optimized": [304, 304]}
    assert summarize(traces)["truncated"] == 1
    short = InstructionOptimizer(AIOCfg(mode="full"), LongOutputBackend()).optimize([0], ["a b c"])[0]
    assert summarize([short])["truncated"] == 1  # 1.25 x 4 + 4 = 9 tokens, all used: also counted
    # ... never past the LLM's context: 512 - the prompt's tokens (- 32 visual tokens for the comparison)
    backend = LongOutputBackend(context=512)
    InstructionOptimizer(AIOCfg(mode="full"), backend).optimize([0], [long])
    rewrite_prompt_tokens = 300 + len(AIOCfg().rewrite_template.split()) - 1
    assert backend.caps[0] == 512 - rewrite_prompt_tokens and backend.caps[1] < backend.caps[0]


def test_rewrite_cache_key_template_decoding_weights_and_bound():
    backend = FakeBackend()
    cfg = AIOCfg(cache_size=2)
    opt = InstructionOptimizer(cfg, backend)
    opt.rewrite(["a b", "c d"])
    opt.rewrite(["a b", "c d"])
    assert len(backend.rewrite_batches) == 1 and opt.cache_info()["hits"] == 2
    cfg.rewrite_template = "Rephrase: {}"  # another template: another rewrite
    opt.rewrite(["a b"])
    cfg.max_new_tokens = 7  # other decoding settings
    opt.rewrite(["a b"])
    backend.token = 1  # other weights
    opt.rewrite(["a b"])
    assert [b[0] for b in backend.rewrite_batches[1:]] == ["Rephrase: a b"] * 3
    assert opt.cache_info()["size"] == 2  # bounded: the least recently used went first
    opt.rewrite(["e f"])
    opt.rewrite(["a b"])  # still held (most recent before "e f")
    assert len(backend.rewrite_batches) == 5
    opt.clear()
    assert opt.cache_info()["size"] == 0
    opt.rewrite(["a b"])
    assert len(backend.rewrite_batches) == 6


def test_remember_seeds_the_cache_and_memoize_off_never_caches():
    backend = FakeBackend()
    opt = InstructionOptimizer(AIOCfg(), backend)
    assert opt.remember([("a b", "earlier rewrite"), ("c d", None)]) == 1
    assert opt.rewrite(["a b"]) == ["earlier rewrite"] and backend.rewrite_batches == []
    opt = InstructionOptimizer(AIOCfg(memoize_rewrites=False), backend)
    opt.rewrite(["x"])
    opt.rewrite(["x"])
    assert len(backend.rewrite_batches) == 2


def test_caps_are_bounded_for_huge_instructions():
    backend = FakeBackend()
    opt = InstructionOptimizer(AIOCfg(), backend)
    (out,) = opt.rewrite([" ".join(["word"] * 5000)])
    assert out.endswith("|5004)")  # as long as the instruction + 4, not 1.25 x 5000 + 4 (6254); no context here
    full = FakeBackend()
    full.generation_room = lambda prompts, visual: 2048 - 5020
    (out,) = InstructionOptimizer(AIOCfg(), full).rewrite([" ".join(["word"] * 5000)])
    assert out.endswith("|1)")  # a context the prompt already fills leaves one token
    (out,) = opt.rewrite(["three short words"])
    assert out.endswith(f"|{int(1.25 * 3) + 4})")


def sample_trace(**changes):
    fields = dict(mode="full", initial="Q: colour? A:", rewritten="What colour is it?", ias_initial=2.5,
                  ias_rewritten=1.75, comparison_prompt="Instruction: Q: colour? A: Score: 2.50\nWrite:",
                  optimized="Name the colour.", used="Name the colour.", keep_spans=["colour"],
                  lost_spans=["colour?"], notes=["a note"], timings={"rewrite": 0.5, "batch": 2})
    fields.update(changes)
    return AIOTrace(**fields)


def test_trace_round_trip_and_json_formatter():
    trace = sample_trace()
    assert AIOTrace.from_dict({**trace.to_dict(), "instance_id": "7"}) == trace
    data = json.loads(format_trace(trace, "json", {"answer": "red"}))
    assert data == {**trace.to_dict(), "answer": "red"}
    with pytest.raises(ValueError, match="style must be"):
        format_trace(trace, "html")


def test_text_formatter_shows_every_stage_in_figure_3_order():
    text = format_trace(sample_trace(), extra={"answer": "red", "correct": True})
    lines = text.split("\n")
    keys = [line.split(":", 1)[0].strip() for line in lines if not line.startswith(" " * 19)]
    assert keys == ["initial", "rewritten", "comparison prompt", "optimized", "used", "content lost", "note",
                    "answer", "correct"]
    assert "Q: colour? A:  (IAS 2.500)" in lines[0] and "(IAS 1.750)" in lines[1]
    assert lines[3].strip() == "Write:"  # a multi-line prompt stays indented under its label
    off = format_trace(AIOTrace(mode="off", initial="Describe it."))
    assert off.split("\n") == ["initial: Describe it.", "   used: Describe it."]


def test_summary_counts():
    traces = [sample_trace(), sample_trace(used="Q: colour? A:", guard_fired=True, reason="lost task content"),
              sample_trace(optimized="", lost_spans=[], used="Q: colour? A:", reason="empty output"),
              AIOTrace(mode="off", initial="x")]
    assert summarize(traces) == {"samples": 3, "changed": 1, "content_lost": 2, "guard_fired": 1, "empty": 1,
                                 "truncated": 0}


def test_token_counts_are_memoized_and_cache_size_zero_still_works():
    backend = FakeBackend()
    calls = []
    backend.llm_token_counts = lambda texts: calls.append(list(texts)) or [len(t.split()) for t in texts]
    opt = InstructionOptimizer(AIOCfg(), backend)
    opt.rewrite(["a b c", "d e"])
    opt.rewrite(["a b c", "f"])
    assert calls == [["a b c", "d e"], ["f"]]
    opt = InstructionOptimizer(AIOCfg(cache_size=0), backend)
    assert opt.rewrite(["a b c"]) and opt.rewrite(["a b c"]) and opt.cache_info()["size"] == 0


def test_settings_are_checked_once_when_built():
    """A config checks its choices when it is built (also in Python, without the YAML loader), and the optimizer
    does not check them again on every call."""
    from lavis_vislinginstruct.models.config import CMAACfg, LLMCfg

    for make, message in ((lambda: AIOCfg(guard="strict"), "aio.guard must be one of none, content, got 'strict'"),
                          (lambda: AIOCfg(order="random"), "aio.order must be one of ias, shuffled"),
                          (lambda: LLMCfg(family="mamba"), "model.llm.family must be one of decoder_only"),
                          (lambda: CMAACfg(scale="sqrt"), "model.cmaa.scale must be one of inv_sqrt_d, none")):
        with pytest.raises(ValueError, match=message):
            make()
    opt = InstructionOptimizer(AIOCfg(), FakeBackend())
    with pytest.raises(ValueError, match="aio.mode must be one of off, rewrite, full, got 'fast'"):
        opt.optimize([0], ["a b"], mode="fast")  # a call's own argument is still checked
