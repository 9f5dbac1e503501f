"""Every bad input gets one clear line (issue 22, rows 2 to 10): what a user sees for each.

Row 2: a tokenizer that cannot be loaded offline; 3: ``run.resume_ckpt_path`` at a file that is no checkpoint; 4: a
run config given as ``--model-spec``; 5: an annotation file with no records; 6: a record without a required field;
7: ``text_input`` None or not strings; 8: the command lines' errors; 9: a duplicate ranking candidate; 10: the
optimize CLI on random weights.
"""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_tiny
from PIL import Image
from test_builders import FIXTURES, LAYOUTS, REAL, build, build_local, lay_out, make_image, needs_real

from lavis_vislinginstruct import optimize, train
from lavis_vislinginstruct.chat.launch import RANDOM_WEIGHTS
from lavis_vislinginstruct.models.spec import read_model_spec

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TINY = ROOT / "projects" / "vislinginstruct" / "train" / "tiny.yaml"
DEMO_EVAL = ROOT / "projects" / "vislinginstruct" / "demo" / "eval_gqa.yaml"
GQA_EVAL = ROOT / "projects" / "vislinginstruct" / "eval" / "gqa_vicuna7b.yaml"


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (220, 30, 30)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def vicuna():
    return build_tiny("vislinginstruct_vicuna").eval()


# ---------------------------------------------------------------------------------- row 2: tokenizers offline


def _cached(repo: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


@pytest.mark.parametrize("arch, key, name, what", [
    ("vislinginstruct_vicuna", "qformer.tokenizer", "bert-base-uncased", "Q-Former"),
    ("vislinginstruct_vicuna", "llm.tokenizer", "lmsys/vicuna-7b-v1.1", "Vicuna"),
    ("vislinginstruct_t5", "llm.tokenizer", "google/flan-t5-xl", "FlanT5"),
])
def test_a_tokenizer_missing_offline_is_named_with_its_config_key(arch, key, name, what):
    """Was ``TypeError: stat: path should be string ... not NoneType`` (BERT) or a sentencepiece ValueError."""
    if _cached(name, "tokenizer_config.json") or _cached(name, "vocab.txt"):
        pytest.skip(f"{name} is in this machine's Hugging Face cache")
    with pytest.raises(FileNotFoundError) as err:
        build_tiny(arch, **{key.replace(".", "__"): name})
    assert str(err.value) == (
        f"{what} tokenizer {name!r} is not available offline: it is not in the Hugging Face cache and cannot be "
        f"downloaded (HF_HUB_OFFLINE is set). Put its files in a local folder and set model.{key} to that "
        "folder's path"
    )


# ------------------------------------------------------------------------------ row 3: not a resume checkpoint


def _write_text(path: Path) -> None:
    path.write_text("this is a text file, not a checkpoint\n" * 20)


def _write_list(path: Path) -> None:
    torch.save([1, 2, 3], path)


def _write_weights_only(path: Path) -> None:
    torch.save({"llm_proj.weight": torch.zeros(2, 2)}, path)


@pytest.mark.parametrize("write, reason", [
    (_write_text, r"it is not a file torch.save wrote \(torch.load: "),
    (_write_list, "it holds a list, not a dict with 'model', 'optimizer', 'epoch'"),
    (_write_weights_only, r"it has no 'model', 'optimizer', 'epoch' entries \(it has 'llm_proj.weight'\)"),
    (None, "no such file"),
])
def test_resume_from_a_file_that_is_no_checkpoint_fails_before_the_run_folder(tmp_path, write, reason):
    """Was ``KeyError: 174812789`` from torch's unpickler (text file), after the run folder had been made."""
    ckpt = tmp_path / "checkpoint_0.pth"
    if write:
        write(ckpt)
    out = tmp_path / "out"
    with pytest.raises((ValueError, FileNotFoundError),
                       match=f"^run.resume_ckpt_path {ckpt} is not a checkpoint: {reason}"):
        train.main(["--cfg-path", str(TRAIN_TINY), "--options", f"run.output_dir={out}",
                    f"run.resume_ckpt_path={ckpt}"])
    assert not out.exists()


# ------------------------------------------------------------------------------- row 4: run config as a spec


def test_a_run_config_given_as_model_spec_is_refused(image_path):
    """Was accepted: its model section (random weights) answered without a word."""
    message = re.escape(
        f"{DEMO_EVAL} is a run config (it has run and datasets sections), not a model spec: pass it as --cfg-path"
    )
    with pytest.raises(ValueError, match=f"^{message}"):
        read_model_spec(str(DEMO_EVAL))
    with pytest.raises(SystemExit, match=f"^error: {message}"):
        optimize.main(["--model-spec", str(DEMO_EVAL), "--image", image_path, "--instruction", "What colour?",
                       "--device", "cpu"])
    with pytest.raises(ValueError, match=message):
        train.parse_args(["--cfg-path", str(DEMO_EVAL), "--model-spec", str(DEMO_EVAL)])


# ------------------------------------------------------------------------------ rows 5 and 6: annotation files


@pytest.fixture
def cache_root(cache_root):
    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _annotation(name: str, root: Path) -> Path:
    lay_out(name, root)
    return root / list(LAYOUTS[name][0].values())[0]


@pytest.mark.parametrize("name, content", [
    ("vli_gqa", "[]"), ("vli_gqa", "{}"), ("vli_visdial", "{}"), ("vli_textvqa", "{ }"), ("vli_vsr", ""),
    ("vli_llava_instruct_150k", "[]"),
])
def test_an_annotation_file_without_records_says_so(cache_root, name, content):
    """Was ``AssertionError: data_loader for split val is None.`` from LAVIS's runner (or a KeyError/TypeError)."""
    path = _annotation(name, cache_root)
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^{path} holds no samples"):
        build(name)


def _drop(path: Path, where, field: str) -> None:
    data = json.loads(path.read_text())
    where(data).pop(field)
    path.write_text(json.dumps(data))


def _drop_jsonl(path: Path, line: int, field: str) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[line])
    record.pop(field)
    lines[line] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name, drop, location, field", [
    ("vli_gqa", lambda d: d["20990002"], r"record '20990002' \(#1\)", "imageId"),
    ("vli_vizwiz", lambda d: d[1], "record #1", "image"),
    ("vli_textvqa", lambda d: d["data"][1], r"record data\[1\]", "image_id"),
    ("vli_visdial", lambda d: d["data"]["dialogs"][1]["dialog"][2], r"record data.dialogs\[1\].dialog\[2\]",
     "question"),
    ("vli_nocaps", lambda d: d["images"][1], r"record images\[1\]", "file_name"),
    ("vli_vsr", 1, r"record #1 \(line 2\)", "caption"),
    ("vli_hateful_memes", 1, r"record #1 \(line 2\)", "id"),
])
def test_a_record_without_a_required_field_names_file_record_and_field(cache_root, name, drop, location, field):
    """Was a bare ``KeyError: 'imageId'``."""
    path = _annotation(name, cache_root)
    if isinstance(drop, int):
        _drop_jsonl(path, drop, field)
    else:
        _drop(path, drop, field)
    with pytest.raises(ValueError, match=f"^{path}: {location} has no field '{field}' \\(it has: "):
        build(name)


def test_a_problem_file_without_a_required_field_is_named(cache_root):
    """IconQA's per-problem ``data.json``: the file is the record."""
    root = cache_root / "iconqa"
    root.mkdir()
    problem = FIXTURES / "iconqa" / "iconqa" / "test" / "choose_txt" / "7" / "data.json"
    data = json.loads(problem.read_text())
    data.pop("question")
    (root / "7").mkdir()
    (root / "7" / "data.json").write_text(json.dumps(data))
    make_image(root / "7" / "image.png")
    with pytest.raises(ValueError, match=f"^{root / '7' / 'data.json'} has no field 'question'"):
        build_local("vli_iconqa", "test", root, storage=str(root))


def test_a_missing_field_is_still_a_key_error_and_pickles_as_a_dict(tmp_path):
    from lavis_vislinginstruct.datasets.datasets.base import read_json

    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"a": 1}]))
    record = read_json(str(path))[0]
    with pytest.raises(KeyError, match="record #0 has no field 'b'"):
        record["b"]
    assert record.get("b") is None and "b" not in record
    assert type(pickle.loads(pickle.dumps(record))) is dict


# -------------------------------------------------------------------------------------- row 7: text_input


@pytest.mark.parametrize("value, message", [
    (None, r"samples\['text_input'\] is None: it must be a list of strings, one per sample"),
    ([5], r"samples\['text_input'\] must be a list of strings; item 0 is int"),
    (["ok", None], r"samples\['text_input'\] must be a list of strings; item 1 is NoneType"),
    (5, r"samples\['text_input'\] must be a list of strings; got int"),
])
def test_text_input_that_is_not_a_list_of_strings_is_named(vicuna, images, value, message):
    """Was ``TypeError: 'NoneType' object is not iterable``; for ``[5]``, "is empty"."""
    samples = {"image": images[: 2 if isinstance(value, list) and len(value) == 2 else 1], "text_input": value}
    with pytest.raises(ValueError, match=f"^{message}$"):
        vicuna.generate(samples, max_length=3)
    with pytest.raises(ValueError, match=f"^{message}$"):
        vicuna.predict_class(samples, ["yes", "no"])
    with pytest.raises(ValueError, match=f"^{message}$"):
        vicuna({**samples, "text_output": ["a"] * samples["image"].size(0)})


def test_a_missing_text_input_is_named(vicuna, images):
    with pytest.raises(ValueError, match=r"^samples\['prompt'\] \(or samples\['text_input'\]\) is missing"):
        vicuna.pipeline("full").optimize({"image": images[:1]})


# ------------------------------------------------------------------------------------- row 8: command lines


@pytest.mark.parametrize("script, cfg", [("evaluate.py", GQA_EVAL), ("train.py", TRAIN_TINY)])
def test_an_options_error_is_one_line_and_exit_status_2(script, cfg):
    """Was the last line of a 15-line traceback from options.py, exit status 1."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, script, "--cfg-path", str(cfg), "--options", "cmaa.enabled=False"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --options cmaa.enabled: 'cmaa' is not a section of the config (model, run, datasets); "
        "did you mean model.cmaa.enabled?"
    )


def test_the_command_line_keeps_the_traceback_of_a_bug(capsys):
    def buggy(argv):
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError, match="a bug"):
        train.run_command(buggy, [])


def test_a_bad_input_found_while_building_is_one_line(tmp_path, capsys):
    """Dataset and model errors before the run starts (here: an empty annotation file) are bad input too."""
    ann = tmp_path / "data" / "llava_instruct_150k" / "llava_instruct_150k.json"
    ann.parent.mkdir(parents=True)
    ann.write_text("[]")
    (tmp_path / "data" / "coco" / "images" / "train2017").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        train.run_command(train.main, ["--cfg-path", str(TRAIN_TINY), "--options", f"run.output_dir={tmp_path / 'o'}",
                                       f"run.cache_root={tmp_path / 'data'}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {ann} holds no samples")


# ---------------------------------------------------------------------------------- row 9: duplicate candidates


def test_a_duplicate_candidate_is_refused(vicuna, images):
    """Was: both copies ranked, with no warning."""
    samples = {"image": images[:2], "text_input": ["Is it red?", "Is it blue?"]}
    with pytest.raises(ValueError, match=r"^sample 1 has the candidate 'yes' twice \(items 0 and 2\)$"):
        vicuna.predict_class(samples, [["yes", "no"], ["yes", "no", "yes"]])
    with pytest.raises(ValueError, match="^sample 0 has the candidate 'no' twice"):
        vicuna.predict_class(samples, ["no", "yes", "no"])  # one list shared by the batch


@needs_real
def test_the_ranking_readers_give_no_duplicate_candidates_on_the_real_samples(cache_root):
    """The check above must not stop a benchmark: the readers of the real samples give distinct candidates."""
    from lavis_vislinginstruct.models.inputs import candidate_lists

    visdial = json.loads((REAL / "visdial/visdial_1.0_val.json").read_text())["data"]["dialogs"]
    for dialog in visdial:
        make_image(cache_root / "vd" / f"VisualDialog_val2018/VisualDialog_val2018_{dialog['image_id']:012d}.jpg")
    visdial_file = str(REAL / "visdial/visdial_1.0_val.json")
    info = {"annotations": {"val": {"storage": visdial_file}}, "images": {"storage": str(cache_root / "vd")}}
    datasets = [build("vli_visdial", build_info=info, options={"rounds": "all"})["val"]]  # every round's options
    problems = json.loads((REAL / "scienceqa/problems.json").read_text())
    for pid in json.loads((REAL / "scienceqa/pid_splits.json").read_text())["test"]:
        make_image(cache_root / "sqa" / "test" / pid / "image.png")
    sqa = {"storage": str(REAL / "scienceqa/problems.json"),
           "pid_splits_storage": str(REAL / "scienceqa/pid_splits.json")}
    info = {"annotations": {"test": sqa}, "images": {"storage": str(cache_root / "sqa")}}
    datasets.append(build("vli_scienceqa", build_info=info, options={"require_image": False})["test"])
    icon = REAL / "iconqa/iconqa/test/choose_txt"
    for pid in os.listdir(icon):
        make_image(cache_root / "icon" / pid / "image.png")
        (cache_root / "icon" / pid / "data.json").write_text((icon / pid / "data.json").read_text())
    datasets.append(build_local("vli_iconqa", "test", cache_root / "icon", storage=str(cache_root / "icon")))
    checked = 0
    for dataset in datasets:
        cands = [dataset.build_sample(ann)["candidates"] for ann in dataset.annotation]
        assert candidate_lists(cands, len(cands)) == cands
        checked += len(cands)
    assert checked == 100 + sum(p["split"] == "test" for p in problems.values()) + len(os.listdir(icon))


# ------------------------------------------------------------------------------- row 10: optimize on random weights


def test_the_optimize_cli_announces_random_weights(image_path, capsys):
    """Was: random output, and nothing said the weights are random."""
    optimize.main(["--image", image_path, "--instruction", "What colour?", "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert f"WARNING: {RANDOM_WEIGHTS}" in err.splitlines()
    assert json.loads(out)["initial"] == "What colour?"  # stdout stays the trace alone
