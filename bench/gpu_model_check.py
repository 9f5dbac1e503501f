"""GPU check of the real-size model: a vicuna7b-shaped VisLingInstruct with random weights in the real dtypes.

Reports time and peak memory of forward+backward (batch 8), ``generate`` (batch 8, beams 5), ``predict_class``
with 100 candidates (prefix-shared, and the repeat-the-prefix reference for comparison) and ``generate`` with
AIO on. No file is read: the EVA ViT-g, Q-Former and LLaMA-7B are built from the dimensions in
``configs/models/vislinginstruct_vicuna7b.yaml``; the tokenizers are the bundled tiny ones (ids fit the real
vocabularies, which keep their real sizes). Needs CUDA.

    python bench/gpu_model_check.py [--model-type vicuna7b]
"""
import argparse
import json
import os
import sys
import time

import torch
from omegaconf import OmegaConf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
import lavis_vislinginstruct  # noqa: E402,F401
from lavis.common.registry import registry  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from lavis_vislinginstruct.models.checkpoint import vit_to_fp16  # noqa: E402
from lavis_vislinginstruct.models.config import VisLingInstructCfg  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from ranking import WORDS  # noqa: E402


def build(model_type: str) -> torch.nn.Module:
    cls = registry.get_model_class("vislinginstruct_vicuna")
    cfg = VisLingInstructCfg.from_omegaconf(OmegaConf.load(cls.default_config_path(model_type)).model)
    cfg.checkpoint, cfg.vision.checkpoint = "", ""
    cfg.qformer.tokenizer, cfg.llm.tokenizer = "tiny_bert", "tiny_llama"
    cfg.llm.model = "not-loaded"  # the LLM skeleton stays on the meta device; a random one replaces it
    with torch.device(DEVICE):
        model = cls(cfg)
        dims = {k: v for k, v in cfg.llm.config.items() if k != "model_type"}
        llm = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **dims), torch_dtype=DTYPE)
    llm.resize_token_embeddings(dims["vocab_size"] + 1)  # 32001 rows: LLaMA plus [PAD], as InstructBLIP
    model.llm_model = llm
    # random 32K-vocabulary LLM, 1K-piece tiny tokenizer: decode ids it lacks as </s> (timings are unaffected)
    tok, decode = model.llm_tokenizer, model.llm_tokenizer.batch_decode
    tok.batch_decode = lambda ids, **kw: decode(ids.masked_fill(ids >= len(tok), tok.eos_token_id), **kw)
    if DTYPE == torch.float16:
        vit_to_fp16(model.visual_encoder)  # vit_precision fp16, as LAVIS: conv/linear weights only
    model.apply_freezing()
    return model


DEVICE, DTYPE = "cuda", torch.float16


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats=3):
    fn()
    _sync()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    _sync()
    peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else 0.0
    return (time.perf_counter() - start) / repeats, peak, out


def text(n, seed):
    g = torch.Generator().manual_seed(seed)
    return " ".join(WORDS[i] for i in torch.randint(len(WORDS), (n,), generator=g).tolist())


def repeat_prefix(model, image, prompt, candidates):
    """LAVIS-style reference: every candidate row repeats the [visual][prompt] prefix; one LLM pass."""
    with torch.no_grad():
        prefix, _ = model.visual_prefix(model.encode_image(image), [prompt])
        tok = model.llm_tokenizer
        p_ids = tok(prompt).input_ids
        rows = [p_ids + tok(c).input_ids[1:] for c in candidates]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, device=DEVICE)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, device=DEVICE), 1
        with model.maybe_autocast():
            embeds = torch.cat([prefix.expand(len(rows), -1, -1), model.llm.get_input_embeddings()(ids)], dim=1)
            full = torch.cat([torch.ones(len(rows), prefix.size(1), dtype=torch.long, device=DEVICE), mask], 1)
            logp = model.llm(inputs_embeds=embeds, attention_mask=full).logits.float().log_softmax(-1)
        start = prefix.size(1) + len(p_ids)
        return [-logp[i, torch.arange(start - 1, start - 1 + len(r) - len(p_ids)), torch.tensor(r[len(p_ids):])]
                .mean().item() for i, r in enumerate(rows)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-type", default="vicuna7b")
    ap.add_argument("--cpu-dry-run", action="store_true", help="exercise the script on CPU (use with tiny)")
    args = ap.parse_args(argv)
    global DEVICE, DTYPE
    if args.cpu_dry_run:
        DEVICE, DTYPE = "cpu", torch.float32
    elif not torch.cuda.is_available():
        raise SystemExit("bench/gpu_model_check.py needs a CUDA device (or --cpu-dry-run)")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build(args.model_type)
    report = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
              "build_s": round(time.perf_counter() - t0, 1),
              "params_total": sum(p.numel() for p in model.parameters()),
              "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    size = model.cfg.vision.image_size
    images = torch.randn(8, 3, size, size, device=DEVICE)
    samples = {"image": images, "text_input": [text(40, i) + "?" for i in range(8)],
               "text_output": [text(20, 50 + i) for i in range(8)]}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    scaler = torch.amp.GradScaler(DEVICE, enabled=DEVICE == "cuda")

    def train_step():
        with model.maybe_autocast():
            loss = model(samples)["loss"]
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.item()

    model.train()
    t, mem, loss = timed(train_step)
    report["forward_backward_b8"] = {"s": round(t, 3), "peak_GiB": round(mem, 1), "loss": round(loss, 3)}
    print(json.dumps(report), flush=True)
    model.eval()
    gen = {"image": images, "text_input": samples["text_input"]}
    t, mem, out = timed(lambda: model.generate(dict(gen), num_beams=5, max_length=30, min_length=30), repeats=2)
    report["generate_b8_beams5_30tok"] = {"s": round(t, 3), "peak_GiB": round(mem, 1)}
    print(json.dumps(report["generate_b8_beams5_30tok"]), flush=True)
    prompt, cands = text(170, 2), [text(5, 100 + i) for i in range(100)]
    one = {"image": images[:1], "text_input": [prompt]}
    t, mem, ranked = timed(lambda: model.predict_class(one, [cands], score="mean"))  # the reference is the mean
    t_ref, mem_ref, ref = timed(lambda: repeat_prefix(model, images[:1], prompt, cands))
    ref_rank = sorted(range(100), key=lambda j: ref[j])
    report["predict_class_100_candidates"] = {
        "prompt_tokens": len(model.llm_tokenizer(prompt).input_ids), "s": round(t, 3), "peak_GiB": round(mem, 1),
        "repeat_prefix_s": round(t_ref, 3), "repeat_prefix_peak_GiB": round(mem_ref, 1),
        "speedup": round(t_ref / t, 2), "top1_agrees": ref_rank[0] == ranked["rankings"][0][0],
        "max_abs_score_diff": round(max(abs(a - b) for a, b in zip(ref, ranked["scores"][0])), 4),
    }
    t, mem, _ = timed(lambda: model.generate(dict(gen), num_beams=5, max_length=10, aio="full"), repeats=1)
    t_off, _, _ = timed(lambda: model.generate(dict(gen), num_beams=5, max_length=10), repeats=1)
    report["generate_b8_aio_full_vs_off"] = {"full_s": round(t, 3), "off_s": round(t_off, 3),
                                             "ratio": round(t / t_off, 2), "peak_GiB": round(mem, 1)}
    print(json.dumps(report, indent=2))
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "gpu_model_check.json"), "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
