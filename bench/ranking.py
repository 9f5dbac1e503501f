"""Prefix-shared candidate ranking vs the repeat-the-prefix reference (how LAVIS's ``_predict_class`` works).

Same small random Vicuna-shaped model and inputs for both; prints wall time of each, their ratio, and whether
the rankings agree. Cases: ScienceQA-like (4 candidates, long context) and VisDial-like (100 candidates,
~200-token prompt). Target: >= 5x on the VisDial-like case.

    python bench/ranking.py [--repeats 5] [--threads 1] [--layers 4] [--hidden 256]

Times are the best of the repeats.
"""
import argparse
import os
import sys
import time

import torch
from omegaconf import OmegaConf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
import lavis_vislinginstruct  # noqa: E402,F401
from lavis.common.registry import registry  # noqa: E402

WORDS = "the red circle is left of a blue square and two small green triangles near the top of the image".split()


def build(hidden: int, layers: int):
    cls = registry.get_model_class("vislinginstruct_vicuna")
    cfg = OmegaConf.load(cls.default_config_path("tiny")).model
    cfg.llm.config.update(hidden_size=hidden, intermediate_size=int(hidden * 2.7), num_hidden_layers=layers,
                          num_attention_heads=max(1, hidden // 64))
    torch.manual_seed(0)
    return cls.from_config(cfg).eval()


def text(n_words: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    return " ".join(WORDS[i] for i in torch.randint(len(WORDS), (n_words,), generator=g).tolist())


@torch.no_grad()
def repeat_prefix_scores(model, image, prompt, candidates):
    """LAVIS's way: every candidate row carries the full [visual][prompt] prefix; one LLM pass over all rows."""
    prefix, _ = model.visual_prefix(model.encode_image(image), [prompt])
    tok = model.llm_tokenizer
    p_ids = tok(prompt).input_ids
    rows = [p_ids + tok(c).input_ids[1:] for c in candidates]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    embeds = torch.cat([prefix.expand(len(rows), -1, -1), model.llm.get_input_embeddings()(ids)], dim=1)
    full_mask = torch.cat([torch.ones(len(rows), prefix.size(1), dtype=torch.long), mask], dim=1)
    logp = model.llm(inputs_embeds=embeds, attention_mask=full_mask).logits.log_softmax(-1)
    scores = []
    for i, r in enumerate(rows):
        start = prefix.size(1) + len(p_ids)
        targets = torch.tensor(r[len(p_ids):])
        positions = torch.arange(start - 1, start - 1 + len(targets))
        scores.append(-logp[i, positions, targets].mean().item())
    return scores


def timed(fn, repeats):
    """Best of ``repeats`` wall times (after a warm-up): robust to other load on a shared machine."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest numbers)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build(args.hidden, args.layers)
    image = torch.randn(1, 3, 32, 32)
    cases = {
        "scienceqa-like (4 candidates, long context)": (text(300, 1), [text(4, 10 + i) for i in range(4)]),
        "visdial-like (100 candidates, ~200-token prompt)": (text(170, 2), [text(5, 100 + i) for i in range(100)]),
    }
    print(f"model: Vicuna-shaped random LLM, hidden {args.hidden}, {args.layers} layers, CPU, "
          f"{torch.get_num_threads()} threads")
    for name, (prompt, cands) in cases.items():
        n_prompt = len(model.llm_tokenizer(prompt).input_ids)
        t_ref, ref = timed(lambda: repeat_prefix_scores(model, image, prompt, cands), args.repeats)
        t_new, new = timed(lambda: model.predict_class({"image": image, "text_input": [prompt]}, [cands],
                                                       score="mean"), args.repeats)  # as the reference
        ref_rank = sorted(range(len(ref)), key=lambda j: ref[j])
        agree = ref_rank == new["rankings"][0]
        max_diff = max(abs(a - b) for a, b in zip(ref, new["scores"][0]))
        print(f"{name}: prompt {n_prompt} tokens | repeat-prefix {t_ref * 1000:.1f} ms | prefix-shared "
              f"{t_new * 1000:.1f} ms | speed-up {t_ref / t_new:.2f}x | rankings agree: {agree} "
              f"(max score diff {max_diff:.2e})")


if __name__ == "__main__":
    main()
