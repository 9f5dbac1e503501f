"""Registration in LAVIS and loading through LAVIS's own entry point, plus config validation."""
import pytest
import torch
from lavis.common.registry import registry
from lavis.models import load_model_and_preprocess
from omegaconf import OmegaConf

from lavis_vislinginstruct.models.config import VisLingInstructCfg

TYPES = {
    "vislinginstruct_vicuna": ["vicuna7b", "vicuna13b", "tiny", "demo"],
    "vislinginstruct_t5": ["flant5xl", "flant5xxl", "tiny"],
}


@pytest.mark.parametrize("name", sorted(TYPES))
def test_load_model_and_preprocess_tiny(name):
    model, vis, txt = load_model_and_preprocess(name, "tiny", is_eval=True, device="cpu")
    assert not model.training and model.device.type == "cpu"
    from PIL import Image

    image = vis["eval"](Image.new("RGB", (50, 40), (200, 30, 30))).unsqueeze(0)
    assert image.shape == (1, 3, 32, 32)
    out = model.generate({"image": image, "text_input": [txt["eval"]("What is in the image?")]}, max_length=4)
    assert len(out) == 1 and isinstance(out[0], str)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_every_model_type_has_a_valid_config(name):
    cls = registry.get_model_class(name)
    assert sorted(cls.PRETRAINED_MODEL_CONFIG_DICT) == sorted(TYPES[name])
    for model_type in TYPES[name]:
        cfg = OmegaConf.load(cls.default_config_path(model_type))
        typed = VisLingInstructCfg.from_omegaconf(cfg.model)  # no unknown keys
        assert cfg.model.arch == name and cfg.model.model_type == model_type
        if model_type not in ("tiny", "demo"):  # random-weight toy sizes
            assert typed.vision.depth == 39 and typed.vision.width == 1408 and typed.vision.patch_size == 14
            assert typed.qformer.num_query_token == 32 and typed.qformer.vocab_size == 30523
            assert typed.checkpoint.endswith("_trimmed.pth") and typed.vision.checkpoint.endswith("eva_vit_g.pth")


def test_unknown_model_type():
    with pytest.raises(ValueError, match="Unknown model_type 'vicuna70b'.*tiny.*vicuna13b"):
        load_model_and_preprocess("vislinginstruct_vicuna", "vicuna70b")


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="model.qformer.max_text_len"):
        VisLingInstructCfg.from_omegaconf({"qformer": {"max_text_len": 3}})
    with pytest.raises(ValueError, match="model.cmaa_on"):
        VisLingInstructCfg.from_omegaconf({"arch": "x", "cmaa_on": True})


def test_missing_local_llm_path_is_named(tmp_path):
    cfg = OmegaConf.load(registry.get_model_class("vislinginstruct_vicuna").default_config_path("tiny")).model
    cfg.llm.tokenizer = str(tmp_path / "llm" / "vicuna-7b")
    with pytest.raises(FileNotFoundError, match="Vicuna tokenizer not found at .*vicuna-7b"):
        registry.get_model_class("vislinginstruct_vicuna").from_config(cfg)


def test_real_size_builds_on_meta_without_files():
    """The vicuna7b skeleton (ViT excluded) builds from config dims alone; no file or network is touched."""
    from lavis_vislinginstruct.models.llm import build_llm

    cfg = VisLingInstructCfg.from_omegaconf(OmegaConf.load(
        registry.get_model_class("vislinginstruct_vicuna").default_config_path("vicuna7b")).model)
    llm = build_llm(cfg, 32001, meta=True)
    n = sum(p.numel() for p in llm.parameters())
    assert 6.6e9 < n < 6.8e9 and next(llm.parameters()).device == torch.device("meta")
