"""LAVIS main's own InstructBLIP classes, built at tiny size, as the reference for equivalence tests.

`make setup` copies ``blip2_vicuna_instruct.py`` and ``blip2_t5_instruct.py`` of LAVIS main (as shipped in the
ammico-lavis 1.0.2.3 wheel) to ``.cache/reference/lavis_main``. Their ``__init__`` runs unchanged; only the
pieces that would download (BERT, EVA ViT, the LLM and its tokenizer) are swapped for tiny local ones, so the
reference applies LAVIS main's own construction logic (vocabulary resize, ``Qformer.cls = None``, freezing,
projection) and its own forward / generate code.

Two substitutions are forced by the environment: LAVIS 1.0.2's ``init_tokenizer`` has no ``truncation_side``
argument (main's has; we honour it), and LAVIS main's vendored ``modeling_llama.py`` (a transformers 4.28 copy)
and LAVIS 1.0.2's vendored ``modeling_t5.py`` (no ``generate`` under transformers >= 4.50) are replaced by
transformers' own ``LlamaForCausalLM`` / ``T5ForConditionalGeneration``: the same computation for the loss and
generation (LAVIS's copies differ only in the ``reduction`` argument that ``_predict_class`` uses).
"""
import importlib.util
import os
import sys
import types

import pytest
import torch
from lavis.models.blip2_models import blip2
from lavis.models.blip2_models.Qformer import BertLMHeadModel
from transformers import BertConfig, LlamaForCausalLM, LlamaTokenizer, T5Config
from transformers import T5ForConditionalGeneration as HFT5

from lavis_vislinginstruct.models import tokenizers
from lavis_vislinginstruct.models.vision import build_vision_tower

REF_DIR = os.path.join(os.path.dirname(__file__), os.pardir, ".cache", "reference", "lavis_main")


def _load(name: str):
    path = os.path.join(REF_DIR, f"{name}.py")
    if not os.path.exists(path):
        pytest.skip(f"LAVIS main reference source missing ({path}); run `make setup`")
    modname = f"lavis.models.blip2_models.{name}_main"
    if modname not in sys.modules:
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    return sys.modules[modname]


def _patch_common(monkeypatch, cfg):
    def init_tokenizer(cls, truncation_side="right"):
        tok = tokenizers.qformer_tokenizer("tiny_bert")
        tok.truncation_side = truncation_side
        return tok

    def init_vision_encoder(cls, model_name, img_size, drop_path_rate, use_grad_checkpoint, precision):
        return build_vision_tower(cfg.vision)

    def init_Qformer(cls, num_query_token, vision_width, cross_attention_freq=2):
        q = cfg.qformer
        bert = BertConfig(
            vocab_size=len(tokenizers.qformer_tokenizer("tiny_bert")) - 1,  # bert vocabulary before [DEC]
            hidden_size=q.hidden_size,
            num_hidden_layers=q.num_hidden_layers,
            num_attention_heads=q.num_attention_heads,
            intermediate_size=q.intermediate_size,
            max_position_embeddings=q.max_position_embeddings,
        )
        bert.encoder_width, bert.add_cross_attention = vision_width, True
        bert.cross_attention_freq, bert.query_length = cross_attention_freq, num_query_token
        query_tokens = torch.nn.Parameter(torch.zeros(1, num_query_token, q.hidden_size))
        return BertLMHeadModel(bert), query_tokens

    monkeypatch.setattr(blip2.Blip2Base, "init_tokenizer", classmethod(init_tokenizer))
    monkeypatch.setattr(blip2.Blip2Base, "init_vision_encoder", classmethod(init_vision_encoder))
    monkeypatch.setattr(blip2.Blip2Base, "init_Qformer", classmethod(init_Qformer))


def build_reference(monkeypatch, ours):
    """LAVIS main's ``Blip2VicunaInstruct`` or ``Blip2T5Instruct`` shaped like ``ours`` (random weights)."""
    cfg = ours.cfg
    _patch_common(monkeypatch, cfg)
    llm_fields = {k: v for k, v in cfg.llm.config.items() if k != "model_type"}
    common = dict(
        img_size=cfg.vision.image_size,
        vit_precision="fp32",
        num_query_token=cfg.qformer.num_query_token,
        max_txt_len=cfg.qformer.max_txt_len,
        max_output_txt_len=cfg.llm.max_output_txt_len,
    )
    if cfg.llm.family == "decoder_only":
        mod = _load("blip2_vicuna_instruct")
        fake = types.ModuleType("lavis.models.blip2_models.modeling_llama")
        fake.LlamaForCausalLM = type(
            "LlamaForCausalLM", (), {"from_pretrained": staticmethod(lambda *a, **k: LlamaForCausalLM(
                ours.llm.config.__class__(**{**llm_fields, "vocab_size": llm_fields["vocab_size"]})))}
        )
        monkeypatch.setitem(sys.modules, fake.__name__, fake)
        monkeypatch.setattr(
            LlamaTokenizer, "from_pretrained",
            classmethod(lambda cls, *a, truncation_side="right", **k: LlamaTokenizer(
                os.path.join(tokenizers._bundled("tiny_llama"), "tokenizer.model"),
                truncation_side=truncation_side, legacy=True)),
        )
        return mod.Blip2VicunaInstruct(llm_model="tiny", **common)
    mod = _load("blip2_t5_instruct")
    monkeypatch.setattr(
        mod.T5TokenizerFast, "from_pretrained",
        classmethod(lambda cls, *a, truncation_side="right", **k: tokenizers.t5_tokenizers("tiny_t5")[
            0 if truncation_side == "left" else 1]),
    )
    monkeypatch.setattr(mod.T5Config, "from_pretrained", classmethod(lambda cls, *a, **k: T5Config(**llm_fields)))
    monkeypatch.setattr(
        mod, "T5ForConditionalGeneration",
        type("T5ForConditionalGeneration", (HFT5,), {"from_pretrained": classmethod(
            lambda cls, *a, config=None, **k: HFT5(config))}),
    )
    return mod.Blip2T5Instruct(t5_model="tiny", **common)
