"""No silent wrong runs (issue 9, section 5): bad ``--options`` keys and values, per entry point, fail early.

``train.py``/``evaluate.py`` check the command line and the merged config before the device, process group, data
or model are looked at: here ``train.check_device`` (the next step) is replaced by a sentinel, so a run that passes
the checks ends in :class:`Reached` and a bad one raises before it. LAVIS alone drops unknown keys and takes any
value.
"""
from pathlib import Path

import pytest
from lavis.common.config import Config
from lavis.models import load_model_and_preprocess
from omegaconf import OmegaConf
from PIL import Image

from lavis_vislinginstruct import evaluate, optimize, train
from lavis_vislinginstruct.models.vislinginstruct import VisLingInstructVicuna
from lavis_vislinginstruct.options import RUN_KEYS, check_config

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = ROOT / "projects" / "vislinginstruct"
EVAL_RANKED = PROJECTS / "eval" / "scienceqa_vicuna7b.yaml"  # vli_ranking
EVAL_GENERATED = PROJECTS / "eval" / "gqa_vicuna7b.yaml"  # vli_generation
TRAIN_TINY = PROJECTS / "train" / "tiny.yaml"


class Reached(Exception):
    """The run got past every check of the config."""


@pytest.fixture(autouse=True)
def stop_before_building(monkeypatch):
    def sentinel(run_cfg):
        raise Reached()

    monkeypatch.setattr(train, "check_device", sentinel)


def run_evaluate(*options, cfg=EVAL_RANKED):
    return evaluate.main(["--cfg-path", str(cfg), "--options", *options])


def run_train(*options):
    return train.main(["--cfg-path", str(TRAIN_TINY), "--options", *options])


ENTRY_POINTS = {"evaluate": run_evaluate, "train": run_train}


@pytest.fixture(params=sorted(ENTRY_POINTS))
def entry(request):
    return ENTRY_POINTS[request.param]


# ------------------------------------------------------------------------------------------------ keys


def test_valid_options_pass_the_checks(entry):
    with pytest.raises(Reached):
        entry("model.cmaa.enabled=False", "model.aio.mode=off", "run.seed=3")


def test_a_key_without_its_section_is_refused(entry):
    """It used to run (and label) the EMA row: LAVIS put it at the top level, where nothing reads it."""
    with pytest.raises(ValueError, match=r"cmaa.enabled: 'cmaa' is not a section .*did you mean model.cmaa.enabled"):
        entry("cmaa.enabled=False")


def test_a_bare_token_is_refused(entry):
    with pytest.raises(ValueError, match="'fast' is not key=value"):
        entry("model.aio.mode=off", "fast")


def test_an_unknown_run_key_is_refused(entry):
    with pytest.raises(ValueError, match=r"run.max_epochs is not a run key \(did you mean run.max_epoch.*valid run "
                                         r"keys: .*accum_grad_iters"):
        entry("run.max_epochs=1")


def test_an_unknown_model_key_is_refused(entry):
    with pytest.raises(ValueError, match=r"Unknown config key\(s\) model.cmaa.on; valid keys of model.cmaa: enabled"):
        entry("model.cmaa.on=False")


def test_an_unknown_model_type_is_refused(entry):
    with pytest.raises(ValueError, match="model_type=foo: unknown model type .*valid model types: demo, tiny, "
                                         "vicuna13b, vicuna7b"):
        entry("model.model_type=foo")


def test_another_model_type_than_the_files_is_refused(entry):
    """LAVIS merges the defaults of the file's model type: the override would only relabel the run."""
    with pytest.raises(ValueError, match="model_type=vicuna13b: the config file builds model_type"):
        entry("model.model_type=vicuna13b")


def test_a_dataset_that_is_not_in_the_config_is_refused():
    with pytest.raises(ValueError, match="dataset 'vli_gqa' is not in this config .*vli_scienceqa"):
        run_evaluate("datasets.vli_gqa.vis_processor.eval.image_size=32")


def test_an_unknown_dataset_key_is_refused():
    with pytest.raises(ValueError, match="'vis_procesor' is not a key of datasets.vli_scienceqa; valid keys: .*"
                                         "vis_processor"):
        run_evaluate("datasets.vli_scienceqa.vis_procesor.eval.image_size=32")


def test_a_known_dataset_key_passes():
    with pytest.raises(Reached):
        run_evaluate("datasets.vli_scienceqa.vis_processor.eval.image_size=32")


# --------------------------------------------------------------------------------------------- values

BAD_MODEL_VALUES = [
    ("cmaa.enabled=maybe", "model.cmaa.enabled must be True or False, got 'maybe'"),
    ("aio.num_beams=abc", "model.aio.num_beams must be an integer, got 'abc'"),
    ("aio.mode=fancy", "model.aio.mode must be one of off, rewrite, full, got 'fancy'"),
]


@pytest.mark.parametrize("option, message", BAD_MODEL_VALUES)
def test_bad_model_values_fail_before_building(entry, option, message):
    with pytest.raises(ValueError, match=message):
        entry(f"model.{option}")


@pytest.mark.parametrize("option, message", BAD_MODEL_VALUES)
def test_bad_model_values_fail_in_the_python_api(option, message, tmp_path, monkeypatch):
    """``load_model_and_preprocess`` on a model type whose YAML holds the bad value."""
    key, value = option.split("=")
    cfg = OmegaConf.load(VisLingInstructVicuna.default_config_path("tiny"))
    OmegaConf.update(cfg, f"model.{key}", value)
    OmegaConf.save(cfg, tmp_path / "bad.yaml")
    types = {**VisLingInstructVicuna.PRETRAINED_MODEL_CONFIG_DICT, "bad": str(tmp_path / "bad.yaml")}
    monkeypatch.setattr(VisLingInstructVicuna, "PRETRAINED_MODEL_CONFIG_DICT", types)
    with pytest.raises(ValueError, match=message):
        load_model_and_preprocess("vislinginstruct_vicuna", "bad", is_eval=True, device="cpu")


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (220, 30, 30)).save(path)
    return str(path)


def run_optimize(image_path, *options):
    return optimize.main(["--image", image_path, "--instruction", "What colour?", "--device", "cpu",
                          "--options", *options])


@pytest.mark.parametrize("prefix", ["", "model."])
@pytest.mark.parametrize("option, message", BAD_MODEL_VALUES)
def test_bad_model_values_fail_in_the_optimize_cli(image_path, prefix, option, message):
    with pytest.raises(SystemExit, match=message):
        run_optimize(image_path, prefix + option)


def test_the_optimize_cli_takes_evaluate_spelling(image_path, capsys):
    """``model.cmaa.enabled=False`` means the same in the CLI as in evaluate.py."""
    trace = run_optimize(image_path, "model.cmaa.enabled=False", "model.aio.max_new_tokens=4")
    assert trace["initial"] == "What colour?" and "used:" in capsys.readouterr().out


@pytest.mark.parametrize("option, message", [
    ("run.max_epoch=1", "only model settings apply here"),
    ("model_type=foo", "name the model and its type with their own arguments"),
    ("cmaa", "is not key=value"),
])
def test_the_optimize_cli_refuses_what_it_cannot_apply(image_path, option, message):
    with pytest.raises(SystemExit, match=message):
        run_optimize(image_path, option)


BAD_RUN_VALUES = [
    ("run.score=median", "run.score must be one of mean, sum, got 'median'"),
    ("run.max_samples=-1", "run.max_samples must be at least 0, got -1"),
    ("run.max_samples=abc", "run.max_samples must be an integer or null, got 'abc'"),
    ("run.resume=maybe", "run.resume must be True or False, got 'maybe'"),
    ("run.chunk_size=0", "run.chunk_size must be at least 1"),
    ("run.batch_size_eval=two", "run.batch_size_eval must be an integer, got 'two'"),
    ("run.device=gpu", "run.device must be cpu, cuda or cuda:<index>, got 'gpu'"),
    ("run.task=vli_rank", "run.task 'vli_rank' is not a registered task; registered: .*vli_ranking"),
    ("run.resume_ckpt_path=/nonexistent/checkpoint_0.pth",
     "run.resume_ckpt_path /nonexistent/checkpoint_0.pth is not a checkpoint: no such file"),
]


@pytest.mark.parametrize("option, message", BAD_RUN_VALUES)
def test_bad_run_values_fail_before_building_an_evaluation(option, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_evaluate(option)


@pytest.mark.parametrize("option, message", [
    ("run.num_beams=0", "run.num_beams must be at least 1"),
    ("run.max_len=ten", "run.max_len must be an integer, got 'ten'"),
    ("run.length_penalty=short", "run.length_penalty must be a number or null, got 'short'"),
])
def test_bad_decoding_values_fail_before_building_an_evaluation(option, message):
    with pytest.raises(ValueError, match=message):
        run_evaluate(option, cfg=EVAL_GENERATED)


@pytest.mark.parametrize("option, message", [
    ("run.max_epoch=0", "run.max_epoch must be at least 1"),
    ("run.init_lr=fast", "run.init_lr must be a number, got 'fast'"),
    ("run.accum_grad_iters=1.5", "run.accum_grad_iters must be an integer, got 1.5"),
    ("run.lr_sched=cosine", "run.lr_sched 'cosine' is not a registered learning-rate scheduler"),
])
def test_bad_training_values_fail_before_building(option, message):
    with pytest.raises(ValueError, match=message):
        run_train(option)


def test_a_typo_in_a_yaml_run_section_is_refused(tmp_path):
    cfg = OmegaConf.load(TRAIN_TINY)
    cfg.run.max_epochs = 1
    OmegaConf.save(cfg, tmp_path / "typo.yaml")
    with pytest.raises(ValueError, match="run section: run.max_epochs is not a run key"):
        train.main(["--cfg-path", str(tmp_path / "typo.yaml")])


# ------------------------------------------------------------------------------------ shipped configs


@pytest.mark.parametrize("path", sorted(PROJECTS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_project_config_passes_the_checks(path):
    cfg = Config(type("Args", (), {"cfg_path": str(path), "options": None})())
    check_config(cfg)
    assert set(cfg.run_cfg) <= set(RUN_KEYS)
