"""Zero-shot evaluation suite: every benchmark through ``evaluate.main`` on the tiny model, switches, resume,
two-process merge, clear errors, and the scorers/result store on hand-made records."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from eval_fixtures import EVAL_CONFIGS, REPO, lay_out, load, read_jsonl, result_files, tiny_config
from lavis.common.config import Config
from lavis.common.registry import registry
from omegaconf import OmegaConf
from test_builders import SPLITS

from lavis_vislinginstruct import evaluate, metrics
from lavis_vislinginstruct.tasks import benchmarks as bm
from lavis_vislinginstruct.tasks.evaluation import GenerationTask, RankingTask
from lavis_vislinginstruct.tasks.result_store import PredictionStore, ResumeMismatchError, merge_records

METRIC_KEYS = {
    "flickr30k": {"cider", "cider_raw", "tokenizer", "official_tokenizer"},
    "nocaps": {"cider", "cider_raw", "tokenizer", "official_tokenizer"},
    "vsr": {"accuracy", "no_answer"},
    "gqa": {"accuracy", "accuracy_normalized_answer"},
    "iconqa": {"accuracy"},
    "vizwiz": {"accuracy"},
    "textvqa": {"accuracy"},
    "visdial": {"mrr", "r@1", "r@5", "r@10", "mean_rank"},
    "scienceqa": {"accuracy"},
    "hateful_memes": {"auc", "accuracy"},
}


def run_eval(benchmark, tmp_path, *options, layout=True, **run):
    """Lay out the fixture data (once) and evaluate the tiny copy of the shipped config; returns main's output."""
    if layout and not (tmp_path / "cache" / ".laid_out").exists():
        lay_out(bm.BENCHMARKS[benchmark].builder, tmp_path / "cache")
        (tmp_path / "cache" / ".laid_out").touch()
    cfg = tiny_config(benchmark, tmp_path, **run)
    argv = ["--cfg-path", str(cfg)] + (["--options", *options] if options else [])
    return evaluate.main(argv)


# ------------------------------------------------------------------------------------------- smoke runs


@pytest.mark.parametrize("benchmark", bm.ORDER)
def test_smoke_every_benchmark(tmp_path, benchmark):
    bench = bm.BENCHMARKS[benchmark]
    out = run_eval(benchmark, tmp_path)
    split, count = SPLITS[bench.builder][:2]
    summary = out["metrics"][split]
    files = result_files(out["result_dir"], split)
    assert load(files["metrics"]) == summary
    assert summary["benchmark"] == benchmark and summary["metric"] == bench.metric
    assert summary["num_samples"] == count and summary["variant"] == "ema"
    assert set(summary["metrics"]) >= METRIC_KEYS[benchmark]
    assert summary["agg_metrics"] == summary["value"] == summary["metrics"][bench.metric]
    assert 0.0 <= summary["value"] <= (1000.0 if bench.metric == "cider" else 100.0)
    predictions = load(files["predictions"])
    assert len({p["instance_id"] for p in predictions}) == count
    for record in predictions:
        assert set(bench.gt_keys) <= set(record) and record["instruction"]
        if bench.family == "ranking":
            assert record["prediction"] == min(range(len(record["scores"])), key=record["scores"].__getitem__)
        else:
            assert isinstance(record["prediction"], str)
    if benchmark in ("flickr30k", "nocaps"):
        assert summary["metrics"]["official_tokenizer"] == (summary["metrics"]["tokenizer"] == "ptb")


def test_aio_full_saves_traces(tmp_path):
    out = run_eval("gqa", tmp_path, aio="full")
    assert out["result_dir"].endswith(os.path.join("ema_aio", "result"))
    files = result_files(out["result_dir"], "val")
    traces = {t["instance_id"]: t for t in load(files["traces"])}
    predictions = load(files["predictions"])
    assert len(traces) == len(predictions) == 3
    for record in predictions:
        trace = traces[record["instance_id"]]
        assert trace["mode"] == "full" and record["instruction"] == trace["used"]
        assert trace["rewritten"] is not None and trace["ias_initial"] is not None and "aio" not in record
    assert load(files["metrics"])["model"]["aio"] == "full"


def test_table2_rows_are_options_switches(tmp_path):
    vanilla = run_eval("vsr", tmp_path, "model.cmaa.enabled=False", "model.aio.mode=off", aio="full")
    summary = vanilla["metrics"]["test"]
    assert summary["variant"] == "vanilla" and summary["model"]["cmaa"] is False and summary["model"]["aio"] == "off"
    assert not result_files(vanilla["result_dir"], "test")["traces"].exists()
    rewrite = run_eval("vsr", tmp_path, "model.aio.mode=rewrite")
    summary = rewrite["metrics"]["test"]
    assert summary["variant"] == "ema_rewrite" and summary["model"]["cmaa"] is True
    traces = load(result_files(rewrite["result_dir"], "test")["traces"])
    assert len(traces) == 4 and all(t["mode"] == "rewrite" for t in traces)
    assert {Path(vanilla["output_dir"]).name, Path(rewrite["output_dir"]).name} == {"vanilla", "ema_rewrite"}


# ------------------------------------------------------------------------------------------------ resume


def run_interrupted(monkeypatch, *args, **kwargs):
    """:func:`run_eval` stopped by a KeyboardInterrupt in its second batch, as Ctrl-C would stop it."""
    calls = {"n": 0}
    real_predict = GenerationTask.predict

    def interrupted(self, model, samples):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_predict(self, model, samples)

    monkeypatch.setattr(GenerationTask, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_eval(*args, **kwargs)
    monkeypatch.setattr(GenerationTask, "predict", real_predict)


def test_resumed_run_equals_uninterrupted(tmp_path, monkeypatch):
    full = run_eval("textvqa", tmp_path, "run.job_id=full", batch_size_eval=1)
    expected = load(result_files(full["result_dir"], "val")["predictions"])

    run_interrupted(monkeypatch, "textvqa", tmp_path, "run.job_id=resumed", batch_size_eval=1)
    result_dir = tmp_path / "out" / "resumed" / "result"
    shard = result_dir / "val_predictions_rank0.jsonl"
    assert len(read_jsonl(shard)) == 1
    with open(shard, "a", encoding="utf-8") as handle:
        handle.write('{"instance_id": "9000')  # a record cut off mid-write

    resumed = run_eval("textvqa", tmp_path, "run.job_id=resumed", batch_size_eval=1)
    summary = resumed["metrics"]["val"]
    assert summary["rank0"]["new_samples"] == 2  # the finished sample was not predicted again
    assert load(result_files(resumed["result_dir"], "val")["predictions"]) == expected
    assert summary["metrics"] == full["metrics"]["val"]["metrics"]
    assert len(read_jsonl(shard)) == 3


def test_resumed_aio_run_equals_uninterrupted_trace_for_trace(tmp_path, monkeypatch):
    """A rewrite depends on the batch it is made in (padding); the resumed run must reuse the finished samples'
    rewrites instead of making them again in another batch."""
    from lavis_vislinginstruct.inference.backend import VisLingInstructBackend

    lay_out(bm.BENCHMARKS["gqa"].builder, tmp_path / "cache")
    (tmp_path / "cache" / ".laid_out").touch()
    ann = next((tmp_path / "cache").rglob("testdev_balanced_questions.json"))
    questions = json.loads(ann.read_text())
    first, _, third = sorted(questions)
    questions[third]["question"] = questions[first]["question"]  # batch 0 = [A, B], batch 1 = [A]
    ann.write_text(json.dumps(questions))

    real_generate = VisLingInstructBackend.generate

    def batch_dependent(self, prefix, prompts, decoding):
        if prefix is None:  # the rewrite: its output depends on what else was in the batch
            return [f"{p} [{len(prompts)} in batch]" for p in prompts]
        return real_generate(self, prefix, prompts, decoding)

    monkeypatch.setattr(VisLingInstructBackend, "generate", batch_dependent)
    full = run_eval("gqa", tmp_path, "run.job_id=full", aio="full", batch_size_eval=2)
    expected = load(result_files(full["result_dir"], "val")["traces"])
    assert len({t["rewritten"] for t in expected}) == 2 and "[2 in batch]" in expected[2]["rewritten"]

    run_interrupted(monkeypatch, "gqa", tmp_path, "run.job_id=resumed", aio="full", batch_size_eval=2)
    resumed = run_eval("gqa", tmp_path, "run.job_id=resumed", aio="full", batch_size_eval=2)
    assert resumed["metrics"]["val"]["rank0"]["new_samples"] == 1
    got = load(result_files(resumed["result_dir"], "val")["traces"])
    assert _without_timings(got) == _without_timings(expected)
    aio = resumed["metrics"]["val"]["aio"]
    assert aio["samples"] == 3 and set(aio) == {"samples", "changed", "content_lost", "guard_fired", "empty",
                                                "truncated"}


def _without_timings(traces):
    """Traces without their measured seconds (everything else must be equal)."""
    return [{k: v for k, v in t.items() if k != "timings"} for t in traces]


def test_resume_with_other_settings_is_refused(tmp_path):
    run_eval("iconqa", tmp_path)
    with pytest.raises(ResumeMismatchError, match="changed: task.score"):
        run_eval("iconqa", tmp_path, "run.score=mean")
    again = run_eval("iconqa", tmp_path, "run.score=mean", "run.resume=False")
    assert again["metrics"]["test"]["task"]["score"] == "mean"


# ---------------------------------------------------------------------------------------------- protocol


def test_ranking_scores_by_summed_nll_unless_mean_is_asked(tmp_path):
    assert RankingTask.settings_from(OmegaConf.create({}), bm.BENCHMARKS["iconqa"])["score"] == "sum"
    runs = {}
    for score in ("sum", "mean"):
        out = run_eval("iconqa", tmp_path, f"run.score={score}", f"run.job_id={score}")
        assert out["metrics"]["test"]["task"]["score"] == score
        runs[score] = {r["instance_id"]: r for r in load(result_files(out["result_dir"], "test")["predictions"])}
    lengths = []
    for instance_id, summed in runs["sum"].items():
        # per candidate: sum = mean x its token count, so the two runs differ by the candidates' lengths
        lengths += [s / m for s, m in zip(summed["scores"], runs["mean"][instance_id]["scores"])]
        assert summed["prediction"] == min(range(len(summed["scores"])), key=summed["scores"].__getitem__)
    assert lengths == pytest.approx([round(n) for n in lengths], abs=1e-3) and min(lengths) >= 1
    assert max(lengths) > 1  # some candidate has several tokens, so the two scores can rank differently


def test_vsr_generates_by_default_and_ranks_on_request(tmp_path):
    generated = run_eval("vsr", tmp_path, "run.job_id=generated")
    summary = generated["metrics"]["test"]
    assert summary["task"]["name"] == "vli_generation" and summary["task"]["method"] == "predict_answers"
    records = load(result_files(generated["result_dir"], "test")["predictions"])
    assert all(isinstance(r["prediction"], str) and "scores" not in r for r in records)
    expected = [metrics.true_false_answer(r["prediction"]) == r["label"] for r in records]
    assert summary["metrics"]["accuracy"] == pytest.approx(100.0 * sum(expected) / len(records))
    ranked = run_eval("vsr", tmp_path, "run.task=vli_ranking", "run.job_id=ranked")
    summary = ranked["metrics"]["test"]
    assert summary["task"]["name"] == "vli_ranking" and summary["task"]["score"] == "sum"
    records = load(result_files(ranked["result_dir"], "test")["predictions"])
    assert all(r["prediction_text"] in ("true", "false") and len(r["scores"]) == 2 for r in records)
    right = [r["prediction"] == r["correct_choice_idx"] for r in records]
    assert summary["metrics"] == {"accuracy": pytest.approx(100.0 * sum(right) / len(records))}


# ---------------------------------------------------------------------------------------- distributed


@pytest.mark.parametrize("late_rank0", [0, 3], ids=["in-step", "rank0-late"])
def test_two_process_run_equals_single_process(tmp_path, late_rank0):
    # rank0-late: rank 0 reads the finished samples 3 s after rank 1 (which writes its first batch well within
    # them); every sample must still be predicted once
    configs = []
    for benchmark in ("gqa", "iconqa"):  # 3 samples each: ranks get 2 and 1
        root = tmp_path / benchmark
        root.mkdir()
        lay_out(bm.BENCHMARKS[benchmark].builder, root / "cache")
        configs.append(tiny_config(benchmark, root))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(REPO / "tests" / "eval_fixtures.py"), "--late-rank0", str(late_rank0), *map(str, configs),
            "--options", "run.job_id=two"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    for benchmark, cfg in zip(("gqa", "iconqa"), configs):
        split = bm.BENCHMARKS[benchmark].split
        single = evaluate.main(["--cfg-path", str(cfg), "--options", "run.job_id=one"])
        two_dir = Path(single["output_dir"]).parent / "two" / "result"
        shards = sorted(two_dir.glob(f"{split}_predictions_rank*.jsonl"))
        assert len(shards) == 2 and all(read_jsonl(s) for s in shards)
        two = result_files(str(two_dir), split)
        one = result_files(single["result_dir"], split)
        assert load(two["metrics"])["world_size"] == 2
        assert _rounded(load(two["predictions"])) == _rounded(load(one["predictions"]))
        assert load(two["metrics"])["metrics"] == pytest.approx(load(one["metrics"])["metrics"])


def _rounded(records):
    """Records with NLL scores rounded (batches of different composition differ in the last float bits)."""
    return [{**r, "scores": [round(s, 4) for s in r["scores"]]} if "scores" in r else r for r in records]


def test_finetuned_checkpoint_is_evaluated(tmp_path):
    from conftest import build_tiny

    from lavis_vislinginstruct.models.checkpoint import trainable_state_dict

    model = build_tiny("vislinginstruct_t5")  # hateful_memes' smoke config is the FlanT5 one
    for param in model.parameters():
        if param.requires_grad:
            param.data.zero_()  # a projection of zeros: the image no longer reaches the LLM
    path = tmp_path / "checkpoint_2.pth"
    torch.save({"model": trainable_state_dict(model)}, path)
    base = run_eval("hateful_memes", tmp_path, "run.job_id=base")
    tuned = run_eval("hateful_memes", tmp_path, f"model.finetuned={path}", "run.job_id=tuned")
    assert tuned["metrics"]["val"]["model"]["finetuned"] == str(path)
    scores = [load(result_files(out["result_dir"], "val")["predictions"]) for out in (base, tuned)]
    assert [r["scores"] for r in scores[0]] != [r["scores"] for r in scores[1]]


# ------------------------------------------------------------------------------------------------ errors


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    (tmp_path / "cache" / "scienceqa" / "images").mkdir(parents=True)  # images there, annotations not
    with pytest.raises(FileNotFoundError, match=r"scienceqa/data/problems\.json not found .*cache_root"):
        run_eval("scienceqa", tmp_path, layout=False)


def test_missing_image_is_a_clear_error(tmp_path):
    lay_out("vli_vsr", tmp_path / "cache", images=False)
    (tmp_path / "cache" / "vsr" / "images").mkdir()  # the folder is there, its images are not
    with pytest.raises(FileNotFoundError, match="Image not found"):
        run_eval("vsr", tmp_path, layout=False)


def test_wrong_task_family_and_unknown_aio_mode(tmp_path):
    with pytest.raises(ValueError, match="iconqa is evaluated by vli_ranking"):
        run_eval("iconqa", tmp_path, "run.task=vli_generation")
    with pytest.raises(ValueError, match="model.aio.mode"):
        run_eval("vsr", tmp_path, "model.aio.mode=sometimes")


# ----------------------------------------------------------------------------------------------- configs


def test_shipped_configs_are_generated_and_consistent(capsys):
    spec = importlib.util.spec_from_file_location("make_eval_configs", REPO / "tools" / "make_eval_configs.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.main(["--check"]) == 0, capsys.readouterr().err
    names = sorted(p.stem for p in EVAL_CONFIGS.glob("*.yaml"))
    assert names == sorted(f"{b}_{llm}" for b in bm.ORDER for llm in bm.LLMS)
    for name in names:
        benchmark, llm = name.rsplit("_", 1)
        bench = bm.BENCHMARKS[benchmark]
        raw = OmegaConf.to_container(OmegaConf.load(EVAL_CONFIGS / f"{name}.yaml"))
        # overrides only: nothing the model, dataset or task defaults already say
        assert raw["model"] == {"arch": bm.LLMS[llm][0], "model_type": llm, "aio": {"guard": "none"}}
        assert raw["datasets"] == {bench.builder: {}}
        cfg = Config(type("Args", (), {"cfg_path": str(EVAL_CONFIGS / f"{name}.yaml"), "options": None})())
        assert cfg.model_cfg.model_type == llm and cfg.model_cfg.arch == bm.LLMS[llm][0]
        assert cfg.run_cfg.row == "ema_aio"  # VisLingInstruct: the fine-tuned projection, CMAA and full AIO
        assert cfg.datasets_cfg[bench.builder].build_info.images.storage  # the dataset defaults are merged in
        assert cfg.datasets_cfg[bench.builder].vis_processor.eval.image_size == 224
        assert list(cfg.datasets_cfg) == [bench.builder] and list(cfg.run_cfg.test_splits) == [bench.split]
        assert registry.get_task_class(cfg.run_cfg.task).family == bench.family  # the paper's protocol
        if bench.family == "ranking":
            assert cfg.run_cfg.score == "sum"
        else:
            assert (cfg.run_cfg.num_beams, cfg.run_cfg.max_len) == (bench.num_beams, bench.max_len)
    assert bm.BENCHMARKS["vsr"].family == "generation"
    assert {b for b in bm.ORDER if bm.BENCHMARKS[b].family == "ranking"} == {"scienceqa", "iconqa", "hateful_memes",
                                                                             "visdial"}  # section 4.3
    assert sorted(p.name for p in (REPO / "run_scripts" / "vislinginstruct" / "eval").iterdir()) == [
        "ablation.sh", "eval.sh"]
    demo_vsr = OmegaConf.load(REPO / "projects" / "vislinginstruct" / "demo" / "eval_vsr.yaml")
    assert demo_vsr.run.task == "vli_generation"


README_ROWS = {"flickr30k": "Flickr30K", "nocaps": "NoCaps", "vsr": "VSR", "gqa": "GQA", "vizwiz": "VizWiz",
               "textvqa": "TextVQA", "iconqa": "IconQA", "scienceqa": "ScienceQA", "hateful_memes": "Hateful Memes",
               "visdial": "Visual Dialog"}  # fmt: skip


def test_readme_protocol_table_matches_the_code():
    from lavis_vislinginstruct.processors import templates

    section = (REPO / "README.md").read_text().split("**The protocol**", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    rows = [r for r in rows if len(r) == 6][1:]  # the protocol table (the settings table has five columns)
    for name, label in README_ROWS.items():
        (row,) = [r for r in rows if label in r[0].split(", ") or r[0].startswith(label)]
        answer, score, wrapper, _, guard = row[1:]
        cfg = OmegaConf.load(EVAL_CONFIGS / f"{name}_vicuna7b.yaml")
        assert answer.startswith("rank" if bm.BENCHMARKS[name].family == "ranking" else "generate"), name
        assert ("sum" in score) == (cfg.run.get("score") == "sum"), name
        assert guard == cfg.model.aio.guard, name
    wrappers = {r[0]: r[3] for r in rows}
    for style in templates.WRAPPER_STYLES.values():  # the default (official) and the option (LAVIS main)
        context, history, caption = (wrapper for _, wrapper in style)
        assert f"`{context}`" in wrappers["ScienceQA (IMG)"]
        both = caption.format(caption="{caption}", prompt=history)
        assert f"`{both}`".replace("\n", "\\n") in wrappers["Visual Dialog"]
    assert f"first {templates.OCR_MAX_TOKENS} OCR tokens joined by `{templates.OCR_SEPARATOR.strip()}" in wrappers[
        "TextVQA"]


def _fake_python(tmp_path):
    """A ``python`` on PATH that prints its arguments instead of running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/bash\necho "python $*"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "NPROC": "2"}


def test_eval_sh_launches_one_config(tmp_path):
    script = REPO / "run_scripts" / "vislinginstruct" / "eval" / "eval.sh"
    env = _fake_python(tmp_path)
    finetuned = tmp_path / "ft.pth"
    finetuned.write_bytes(b"x")
    out = subprocess.run([str(script), "scienceqa", "vicuna7b", "--finetuned", str(finetuned), "--options",
                          "run.row=vanilla"], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("python -m torch.distributed.run --nproc_per_node=2 evaluate.py --cfg-path "
                           "projects/vislinginstruct/eval/scienceqa_vicuna7b.yaml --options "
                           f"model.finetuned={finetuned} --options run.row=vanilla")
    bad = subprocess.run([str(script), "sciqa", "vicuna7b", "--finetuned", str(finetuned)], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no config" in bad.stderr and "scienceqa" in bad.stderr and not bad.stdout
    missing = subprocess.run([str(script)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "usage: eval.sh <benchmark> <llm> --finetuned PATH" in missing.stderr
    no_projection = subprocess.run([str(script), "gqa", "vicuna7b"], env=env, capture_output=True, text=True)
    assert no_projection.returncode == 2 and "--finetuned PATH is required" in no_projection.stderr
    absent = subprocess.run([str(script), "gqa", "vicuna7b", "--finetuned", str(tmp_path / "no.pth")], env=env,
                            capture_output=True, text=True)
    assert absent.returncode == 2 and "no.pth: no such file" in absent.stderr


def test_ablation_sh_runs_the_four_rows_of_every_benchmark_from_one_projection(tmp_path):
    script = REPO / "run_scripts" / "vislinginstruct" / "eval" / "ablation.sh"
    finetuned = tmp_path / "ft.pth"
    finetuned.write_bytes(b"x")
    env = _fake_python(tmp_path)
    out = subprocess.run([str(script), "flant5xl", "--finetuned", str(finetuned)], env=env,
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert len(out) == 4 * len(bm.ORDER) + 1 and out[-1].startswith("python -m lavis_vislinginstruct.report")
    for i, bench in enumerate(bm.ORDER):
        lines = out[4 * i : 4 * i + 4]
        assert all(f"eval/{bench}_flant5xl.yaml --options model.finetuned={finetuned}" in line for line in lines)
        assert [line.rsplit("--options ", 1)[1] for line in lines] == [f"run.row={row}" for row in bm.VARIANTS]
    refused = subprocess.run([str(script), "flant5xl", "gqa"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--finetuned PATH is required" in refused.stderr and not refused.stdout


# ----------------------------------------------------------------------------- scorers and result store


def test_scorers_on_hand_made_records(tmp_path):
    hm = [{"scores": [2.0, 1.0], "label": 1, "prediction": 1}, {"scores": [1.0, 3.0], "label": 0, "prediction": 0},
          {"scores": [1.5, 1.0], "label": 0, "prediction": 1}]  # hateful score = loss(no) - loss(yes): 1, -2, 0.5
    assert bm.score_hateful_memes(hm, {}) == {"auc": 100.0, "accuracy": pytest.approx(200 / 3)}

    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps([{"image_id": 7, "round_id": 2, "gt_relevance": [0, 1, 0.5]}]))
    visdial = [{"scores": [0.5, 0.1, 0.9], "gt_index": 0, "image_id": 7, "round_id": 1},  # rank 2
               {"scores": [0.9, 0.1, 0.2], "gt_index": 1, "image_id": 7, "round_id": 2}]  # rank 1, ideal order
    out = bm.score_visdial(visdial, {"visdial_dense_annotations": str(dense)})
    assert out["mrr"] == pytest.approx(75.0) and out["mean_rank"] == 1.5 and out["r@1"] == 50.0
    assert out["ndcg"] == pytest.approx(100.0) and out["ndcg_rounds"] == 1

    vqa = [{"prediction": "Unanswerable", "answers": ["unanswerable"] * 10}, {"prediction": "x", "answers": []}]
    assert bm.score_vqa(vqa, {}) == {"accuracy": 100.0}
    with pytest.raises(ValueError, match="server"):
        bm.score_vqa(vqa[1:], {})

    caps = [{"instance_id": str(i), "prediction": p, "captions": c, "domain": d} for i, (p, c, d) in enumerate([
        ("a dog runs", ["a dog runs on grass", "dog running"], "in-domain"),
        ("a red car", ["a red car parked", "car on a street"], "in-domain"),
        ("a cat sleeps", ["a cat sleeping on a bed", "sleeping cat"], "out-domain"),
        ("two birds", ["two birds on a wire", "birds sitting"], "out-domain")])]
    out = bm.score_captions(caps, {})
    assert {"cider", "cider_in-domain", "cider_out-domain"} <= set(out) and out["cider"] > 0


def test_merge_and_store(tmp_path):
    store = PredictionStore(str(tmp_path), "val")
    with store.writer(0) as w0, store.writer(1) as w1:
        w0.write([{"instance_id": "b", "p": 1}, {"instance_id": "a", "p": 0}])
        w1.write([{"instance_id": "c", "p": 2}, {"instance_id": "a", "p": 9}])  # padding duplicate
    assert merge_records(store.read(), ["a", "b", "c"]) == [
        {"instance_id": "a", "p": 0}, {"instance_id": "b", "p": 1}, {"instance_id": "c", "p": 2}]
    with pytest.raises(RuntimeError, match="1 of 4 samples have no prediction"):
        merge_records(store.read(), ["a", "b", "c", "d"])
    with open(store.shard_path(1), "a") as handle:
        handle.write('{"instance_id": "d"')
    store.repair(1)
    assert store.done_ids() == {"a", "b", "c"}
    settings = {"model": {"aio": {"mode": "full"}}}
    with pytest.raises(ResumeMismatchError, match="without val_run.json"):
        store.check_run(settings, resume=True)
    store.write_run(settings)
    assert store.check_run(settings, resume=True) is True
    with pytest.raises(ResumeMismatchError, match="model.aio.mode"):
        store.check_run({"model": {"aio": {"mode": "off"}}}, resume=True)
    assert store.check_run({"other": 1}, resume=False) is False
    store.clear()
    assert not store.shard_paths()


def test_variant_names():
    from lavis_vislinginstruct.inference.rows import row_for

    assert [bm.variant_name(row_for(c, a)) for c, a, _ in bm.VARIANTS.values()] == list(bm.VARIANTS)
    assert bm.variant_name(row_for(False, "full")) == "cmaa-off_aio-full"
    assert bm.variant_name(row_for(True, "full"), "best_ias") == "ema_aio_best-ias"
    assert bm.variant_name(row_for(True, "full", "shuffled")) == "ema_aio_shuffled"
    assert bm.variant_name(row_for(True, "rewrite", "shuffled")) == "ema_rewrite"  # no comparison to shuffle
    assert row_for(False, "off", projection="finetuned").name == "cmaa-off_aio-off_proj-finetuned"


def test_ablation_sh_dry_run_writes_the_four_rows_of_table_2(tmp_path):
    """``ablation.sh vicuna7b --finetuned <tiny checkpoint> gqa`` through torchrun (NPROC=1, the tiny model type):
    four run records whose rows, CMAA switch and projection files are the paper's."""
    from conftest import write_base_and_finetuned

    from lavis_vislinginstruct.tasks.result_store import file_digest

    base, finetuned = write_base_and_finetuned("vislinginstruct_vicuna", tmp_path, seed=11)
    lay_out(bm.BENCHMARKS["gqa"].builder, tmp_path / "cache")
    configs = tmp_path / "configs"
    configs.mkdir()
    cfg = OmegaConf.load(tiny_config("gqa", tmp_path, llm="vicuna7b", max_samples=2))
    cfg.model.checkpoint = str(base)
    OmegaConf.save(cfg, configs / "gqa_vicuna7b.yaml")  # the name ablation.sh looks for, with the tiny model
    env = {**os.environ, "NPROC": "1", "CONFIG_DIR": str(configs), "EVAL_OUT": str(tmp_path / "out"),
           "REPORT_DIR": str(tmp_path / "report"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = REPO / "run_scripts" / "vislinginstruct" / "eval" / "ablation.sh"
    proc = subprocess.run([str(script), "vicuna7b", "--finetuned", str(finetuned), "gqa"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["model"]["row"]: r for r in map(load, sorted((tmp_path / "out").rglob("val_metrics.json")))}
    assert sorted(records) == sorted(bm.VARIANTS)
    digests = {"base": file_digest(str(base)), "finetuned": file_digest(str(finetuned))}
    for row, record in records.items():
        info = record["model"]
        assert info["cmaa"] is (row != "vanilla") and info["projection"] == ("base" if row == "vanilla" else
                                                                             "finetuned")
        assert info["projection_sha256"] == digests[info["projection"]]
        assert info["weights"] == {"checkpoint": digests["base"], "finetuned": digests["finetuned"]}
        assert record["num_samples"] == 2 and (record["aio"] is None) == (row in ("vanilla", "ema"))
    assert (tmp_path / "report").is_dir()


def test_report_refuses_rows_of_different_weights(tmp_path):
    from lavis_vislinginstruct import report

    for row, finetuned in (("ema", "aaa"), ("ema_aio", "bbb")):
        folder = tmp_path / row / "result"
        folder.mkdir(parents=True)
        summary = {"benchmark": "gqa", "variant": row, "value": 50.0, "finished": row,
                   "model": {"model_type": "vicuna7b", "weights": {"checkpoint": "base", "finetuned": finetuned}}}
        (folder / "val_metrics.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"evaluate vicuna7b with different weights \(finetuned: "):
        report.load_results([str(tmp_path)])
