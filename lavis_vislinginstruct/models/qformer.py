"""The instruction-aware Q-Former, built from config dimensions with LAVIS's own ``BertLMHeadModel``.

LAVIS's ``Blip2Base.init_Qformer`` calls ``from_pretrained("bert-base-uncased")``; here the BERT geometry comes
from :class:`~lavis_vislinginstruct.models.config.QFormerCfg` and the weights from the InstructBLIP checkpoint.
The LM head is dropped (``Qformer.cls = None``) exactly as InstructBLIP does, so the state-dict keys are
``Qformer.bert.*``.
"""
from typing import Tuple

import torch
import torch.nn as nn
from lavis.models.blip2_models.Qformer import BertLMHeadModel
from transformers import BertConfig

from .config import QFormerCfg


def build_qformer(cfg: QFormerCfg, vision_width: int) -> Tuple[BertLMHeadModel, nn.Parameter]:
    """Q-Former with cross-attention to ``vision_width`` features every ``cross_attention_freq`` layers."""
    bert_cfg = BertConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
    )
    bert_cfg.encoder_width = vision_width
    bert_cfg.add_cross_attention = True
    bert_cfg.cross_attention_freq = cfg.cross_attention_freq
    bert_cfg.query_length = cfg.num_query_token
    qformer = BertLMHeadModel(bert_cfg)
    qformer.cls = None
    query_tokens = nn.Parameter(torch.zeros(1, cfg.num_query_token, cfg.hidden_size))
    query_tokens.data.normal_(mean=0.0, std=bert_cfg.initializer_range)
    return qformer, query_tokens
