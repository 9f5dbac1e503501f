"""The official VisLingInstruct code's settings as the defaults of the real model types and project configs.

Official code: GitHub ``Zhudongsheng75/VisLingInstruct`` (``eval_configs/``, ``train_configs/``,
``vislinginstruct/models/my_mmlm_{vicuna,flant5}.py``); ``/work/shared/notes/lavis-facts.md`` section 9.
"""
import re
from pathlib import Path

import pytest
from lavis.common.config import Config
from lavis.common.registry import registry
from omegaconf import OmegaConf

from lavis_vislinginstruct.models.config import VisLingInstructCfg
from lavis_vislinginstruct.tasks.benchmarks import LLMS, ORDER

REPO = Path(__file__).resolve().parents[1]
REAL_TYPES = sorted(LLMS)  # vicuna7b, vicuna13b, flant5xl, flant5xxl


def _model_cfg(model_type: str) -> VisLingInstructCfg:
    arch = LLMS[model_type][0]
    return VisLingInstructCfg.from_omegaconf(OmegaConf.load(registry.get_model_class(arch).default_config_path(
        model_type)).model)


def _project_model(path: Path) -> VisLingInstructCfg:
    """The model section a project config gives after LAVIS merges the model type's defaults under it."""
    cfg = Config(type("Args", (), {"cfg_path": str(path), "options": None})()).config
    return VisLingInstructCfg.from_omegaconf(cfg.model)


@pytest.mark.parametrize("model_type", REAL_TYPES)
def test_real_model_types_keep_512_instruction_tokens_as_the_official_configs(model_type):
    cfg = _model_cfg(model_type)
    # eval_configs/eval_vicuna7b.yaml:23-24, eval_flant5.yaml:20-21, train_configs/finetune_my_mmlm_*.yaml:25-26
    assert cfg.qformer.max_txt_len == 512 and cfg.llm.max_output_txt_len == 256
    assert cfg.qformer.max_txt_len <= cfg.qformer.max_position_embeddings
    text = Path(registry.get_model_class(LLMS[model_type][0]).default_config_path(model_type)).read_text()
    assert re.search(r"eval_configs/eval_(vicuna7b|flant5)\.yaml:2[03]", text)  # the source, file and line


@pytest.mark.parametrize("model_type", REAL_TYPES)
def test_train_and_eval_project_configs_get_512(model_type):
    paths = [REPO / "projects" / "vislinginstruct" / "train" / f"{model_type}.yaml"]
    paths += [REPO / "projects" / "vislinginstruct" / "eval" / f"{bench}_{model_type}.yaml" for bench in ORDER[:2]]
    for path in paths:
        assert _project_model(path).qformer.max_txt_len == 512, path


def test_tiny_and_demo_types_keep_their_own_length():
    for arch, model_type in [("vislinginstruct_vicuna", "tiny"), ("vislinginstruct_vicuna", "demo"),
                             ("vislinginstruct_t5", "tiny")]:
        path = registry.get_model_class(arch).default_config_path(model_type)
        assert VisLingInstructCfg.from_omegaconf(OmegaConf.load(path).model).qformer.max_txt_len == 128


def test_max_txt_len_beyond_the_qformer_positions_is_refused():
    with pytest.raises(ValueError, match=r"model\.qformer\.max_txt_len=513 .*max_position_embeddings=512"):
        VisLingInstructCfg.from_omegaconf({"qformer": {"max_txt_len": 513}})


@pytest.mark.parametrize("dtype", ["fp16"])
def test_flant5_in_fp16_is_refused_with_bf16_suggested(dtype):
    with pytest.raises(ValueError, match=r"model\.llm\.dtype=fp16 .*FlanT5.*model\.llm\.dtype=bf16"):
        VisLingInstructCfg.from_omegaconf({"llm": {"family": "encoder_decoder", "dtype": dtype}})
    cfg = OmegaConf.load(registry.get_model_class("vislinginstruct_t5").default_config_path("flant5xl")).model
    with pytest.raises(ValueError, match="bf16"):
        VisLingInstructCfg.from_omegaconf(OmegaConf.merge(cfg, {"llm": {"dtype": "fp16"}}))


@pytest.mark.parametrize("dtype", ["auto", "bf16", "fp32"])
def test_flant5_other_dtypes_and_vicuna_fp16_load(dtype):
    assert VisLingInstructCfg.from_omegaconf({"llm": {"family": "encoder_decoder", "dtype": dtype}}).llm.dtype == dtype
    assert VisLingInstructCfg.from_omegaconf({"llm": {"family": "decoder_only", "dtype": "fp16"}}).llm.dtype == "fp16"
