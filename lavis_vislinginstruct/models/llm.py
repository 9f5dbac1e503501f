"""The language model of VisLingInstruct built from config dimensions (random weights), as ``vision.py`` and
``qformer.py`` build theirs; pretrained weights replace it in :func:`.checkpoint.load_weights`."""
import contextlib

import torch
import torch.nn as nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .config import VisLingInstructCfg


def build_llm(cfg: VisLingInstructCfg, vocab_size: int, meta: bool = False) -> nn.Module:
    """The LLM from ``llm.config`` dimensions (random weights); on the meta device when the loader replaces it.

    T5 uses exact GELU (``dense_act_fn="gelu"``) as LAVIS's InstructBLIP does for FlanT5.
    """
    llm = cfg.llm
    if not llm.config:
        if not llm.model:
            raise ValueError("llm.config (dimensions) or llm.model (pretrained path) must be set")
        kind = "llama" if llm.family == "decoder_only" else "t5"
        hf_cfg = AutoConfig.for_model(kind)
    else:
        fields = dict(llm.config)
        kind = fields.pop("model_type", "llama" if llm.family == "decoder_only" else "t5")
        hf_cfg = AutoConfig.for_model(kind, **fields)
    if llm.family == "encoder_decoder":
        hf_cfg.dense_act_fn = "gelu"
    ctx = torch.device("meta") if meta else contextlib.nullcontext()
    with ctx:
        auto = AutoModelForCausalLM if llm.family == "decoder_only" else AutoModelForSeq2SeqLM
        model = auto.from_config(hf_cfg)
    if not meta and model.get_input_embeddings().num_embeddings != vocab_size:
        model.resize_token_embeddings(vocab_size)
    return model
