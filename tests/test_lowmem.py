"""Low-memory loading of the LLM (``llm.load_in_8bit`` / ``load_in_4bit`` / ``device_map``): checked config, a clear
error without CUDA, and the settings reaching ``from_pretrained`` for every entry point's loader (no GPU here: a GPU
is stood in for by patching ``checkpoint.cuda_available``, and ``from_pretrained`` records what it was given)."""
import re

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

from lavis_vislinginstruct.models import checkpoint
from lavis_vislinginstruct.models.config import VisLingInstructCfg
from lavis_vislinginstruct.models.loading import load_with_options, model_class

ARCH = "vislinginstruct_vicuna"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A pretrained-format LLaMA with the tiny model's dimensions, saved as HF files."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 vocab_size=1000, max_position_embeddings=512)).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def recorded(monkeypatch):
    """``from_pretrained`` that records its keyword arguments and loads plainly in fp32 (no bitsandbytes on CPU)."""
    calls = []
    real = AutoModelForCausalLM.from_pretrained

    def fake(path, **kwargs):
        calls.append(kwargs)
        return real(path, torch_dtype=torch.float32)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake)
    return calls


def options(llm_path, **llm):
    return [f"llm.model={llm_path}", "llm.tokenizer=tiny_llama"] + [f"llm.{k}={v}" for k, v in llm.items()]


@pytest.mark.parametrize("llm, message", [
    ({"load_in_8bit": True, "load_in_4bit": True}, "load_in_8bit and model.llm.load_in_4bit exclude each other"),
    ({"load_in_8bit": True}, "model.llm.load_in_8bit needs model.llm.model"),
    ({"device_map": "everywhere"}, "model.llm.device_map must be auto, balanced"),
    ({"load_in_4bit": "yes"}, "model.llm.load_in_4bit must be True or False, got 'yes'"),
])
def test_config_is_checked(llm, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        VisLingInstructCfg.from_omegaconf({"llm": llm})


def test_8bit_without_cuda_is_a_clear_error(tiny_llama, monkeypatch):
    monkeypatch.setattr(checkpoint, "cuda_available", lambda: False)
    for flag in ("load_in_8bit", "load_in_4bit"):
        with pytest.raises(ValueError, match=f"model.llm.{flag} needs a CUDA GPU"):
            load_with_options(ARCH, "tiny", options(tiny_llama, **{flag: True}))


@pytest.mark.parametrize("llm, expect", [
    ({"load_in_8bit": True}, {"bits": 8, "device_map": {"": 0}}),
    ({"load_in_4bit": True, "device_map": "auto"}, {"bits": 4, "device_map": "auto"}),
    ({"device_map": "balanced"}, {"bits": None, "device_map": "balanced"}),
    ({}, {"bits": None, "device_map": None}),
])
def test_settings_reach_from_pretrained(tiny_llama, recorded, monkeypatch, llm, expect):
    monkeypatch.setattr(checkpoint, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    model, _, _ = load_with_options(ARCH, "tiny", options(tiny_llama, **llm))
    (kwargs,) = recorded
    assert kwargs["torch_dtype"] == torch.float32  # the tiny config's llm.dtype
    assert kwargs.get("device_map") == expect["device_map"]
    quant = kwargs.get("quantization_config")
    if expect["bits"] is None:
        assert quant is None
    else:
        assert isinstance(quant, BitsAndBytesConfig)
        assert (quant.load_in_8bit, quant.load_in_4bit) == (expect["bits"] == 8, expect["bits"] == 4)
    if expect["bits"] == 4:
        assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
        assert quant.bnb_4bit_compute_dtype == torch.float32
    assert model.llm.get_input_embeddings().num_embeddings == len(model.adapter.tokenizer)


def test_evaluate_entry_point_passes_them_too(tiny_llama, recorded, monkeypatch):
    """train.py / evaluate.py build through LAVIS's ``from_config`` with the merged model section."""
    monkeypatch.setattr(checkpoint, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cls = model_class(ARCH)
    cfg = OmegaConf.load(cls.default_config_path("tiny")).model
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(options(tiny_llama, load_in_8bit=True)))
    cls.from_config(cfg)
    assert recorded[0]["quantization_config"].load_in_8bit


@pytest.mark.parametrize("llm, cast", [({"load_in_8bit": True}, False), ({}, True)])
def test_dtype_casts_leave_a_placed_llm_alone(tiny_llama, recorded, monkeypatch, llm, cast):
    """On a GPU the loader casts the LLM to fp16; a quantized (or dispatched) LLM keeps what from_pretrained made,
    and ``model.to(...)`` moves everything else."""
    monkeypatch.setattr(checkpoint, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cls = model_class(ARCH)
    cfg = OmegaConf.load(cls.default_config_path("tiny")).model
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(options(tiny_llama, dtype="fp16", **llm)))
    model = cls.from_config(cfg)
    assert model.llm.dtype == (torch.float16 if cast else torch.float32)
    model.to(torch.float64)
    assert model.query_tokens.dtype == torch.float64 and model.proj.weight.dtype == torch.float64
    assert model.llm.dtype == (torch.float64 if cast else torch.float32)
