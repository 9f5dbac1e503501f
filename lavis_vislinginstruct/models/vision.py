"""The frozen vision tower: LAVIS's EVA ViT built from config dimensions, plus ``ln_vision``.

LAVIS's ``create_eva_vit_g`` downloads ``eva_vit_g.pth`` while it builds; here the ViT is built from
:class:`~lavis_vislinginstruct.models.config.VisionCfg` only and its weights come from ``checkpoint.load_weights``.
The module names match LAVIS (``visual_encoder.*``, ``ln_vision.*``) so InstructBLIP checkpoints load unchanged.
"""
from functools import partial
from typing import Tuple

import torch.nn as nn
from lavis.models.blip2_models.blip2 import LayerNorm, disabled_train
from lavis.models.eva_vit import VisionTransformer

from .config import VisionCfg


def build_vision_tower(cfg: VisionCfg) -> Tuple[VisionTransformer, LayerNorm]:
    """EVA ViT (no final norm, no classifier head) and the fp32 LayerNorm InstructBLIP puts after it."""
    vit = VisionTransformer(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        use_mean_pooling=False,
        embed_dim=cfg.width,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        qkv_bias=True,
        drop_path_rate=cfg.drop_path_rate,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_checkpoint=cfg.use_grad_checkpoint,
    )
    return vit, LayerNorm(cfg.width)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients and pin the module in eval mode (``train()`` becomes a no-op), as LAVIS does."""
    for param in module.parameters():
        param.requires_grad = False
    module.eval()
    module.train = disabled_train.__get__(module)
    return module
