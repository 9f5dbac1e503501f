"""The checkpoint contract of a VisLingInstruct model: the plugin's side of LAVIS's runner (save, resume, refuse).

``state_dict()`` is what a checkpoint of the model holds, the trainable parameters only (the projection; everything
else comes from the files the config names), and ``load_state_dict(strict=True)`` accepts such a checkpoint while
still refusing unexpected keys and missing trainable ones. So LAVIS 1.0.2's stock ``RunnerBase._save_checkpoint`` /
``_load_checkpoint`` write a few MB for a 7B model and resume from them. ``full_state_dict()`` is every tensor
(PyTorch's ``state_dict``). The model records which file each parameter came from (``weight_sources``, filled by
:func:`.checkpoint.load_weights`), so entry points can refuse to evaluate a model whose pretrained parts would stay
random (:meth:`CheckpointContract.check_weights_loaded`).
"""
from typing import Dict, List, Tuple

import torch

from . import checkpoint as ckpt


class CheckpointContract:
    """Mixin for the model class (before ``nn.Module`` in the bases): trainable-only checkpoints and weight sources.

    The class using it sets ``self.weight_sources = {}`` and ``self.model_type``.
    """

    #: Model types whose weights are random on purpose (tests, plumbing checks); every other type must load all of
    #: its weights from files before it evaluates (:meth:`check_weights_loaded`).
    RANDOM_MODEL_TYPES: Tuple[str, ...] = ("tiny",)

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """What a checkpoint of this model holds: the trainable parameters only.

        No buffers (the Q-Former's ``position_ids`` is a constant) and no frozen weights, so also none of the tied
        copies of T5's embedding (``encoder/decoder.embed_tokens.weight``) that LAVIS 1.0.2's
        ``RunnerBase._save_checkpoint`` keeps when it filters PyTorch's state dict by ``named_parameters()``.
        Keyword arguments of :meth:`torch.nn.Module.state_dict` (a parent module, such as DDP, passes its
        ``destination`` and a ``prefix``). Every tensor: :meth:`full_state_dict`.
        """
        before = set(destination) if destination is not None else set()
        before_meta = set(getattr(destination, "_metadata", {}) or {})
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        keep = {prefix + name for name in self.trainable_parameter_names()}
        for key in [k for k in out if k not in before and k not in keep]:
            del out[key]
        # PyTorch's per-module versions, only for the modules left (hundreds of entries for the whole model)
        modules = {key.rsplit(".", i)[0] for key in keep for i in range(1, key.count(".") + 1)} | {prefix[:-1]}
        meta = getattr(out, "_metadata", None)
        for name in [m for m in (meta or {}) if m not in before_meta and m not in modules]:
            del meta[name]
        return out

    def full_state_dict(self, keep_vars: bool = False) -> Dict[str, torch.Tensor]:
        """Every parameter and persistent buffer, under PyTorch's names (tied T5 embeddings under each alias)."""
        return ckpt.full_state_dict(self, keep_vars=keep_vars)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a checkpoint; with ``strict`` it may hold only the trainable parameters (:meth:`state_dict`).

        ``strict=True`` refuses keys this model does not have and a missing trainable parameter; frozen weights
        absent from ``state_dict`` keep the values the config's files gave them. ``strict=False`` is PyTorch's.

        Raises:
            CheckpointKeyError: (a ``KeyError``) naming the unexpected or missing keys, with ``strict``.
        """
        if strict:
            ckpt.check_checkpoint_keys(self, state_dict, "state dict")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def trainable_parameter_names(self) -> List[str]:
        """Names of the parameters that train (``named_parameters``, so a tied tensor once)."""
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def unloaded_parameters(self, frozen_only: bool = False) -> List[str]:
        """Parameters no weight file provided (they hold their random initialization), optionally frozen ones only."""
        return [
            name
            for name, p in self.named_parameters()
            if name not in self.weight_sources and not (frozen_only and p.requires_grad)
        ]

    def check_weights_loaded(self, purpose: str = "evaluate", frozen_only: bool = False) -> None:
        """Refuse to ``purpose`` with weights that would stay random, unless the model type is random on purpose.

        Args:
            purpose: What the caller is about to do (named in the message).
            frozen_only: Only frozen parameters must come from files (training: what trains may start random).

        Raises:
            ValueError: Naming the modules whose weights no file provided and the config keys that provide them.
        """
        if self.model_type in self.RANDOM_MODEL_TYPES:
            return
        missing = self.unloaded_parameters(frozen_only)
        if not missing:
            return
        raise ValueError(
            f"{type(self).__name__} (model_type {self.model_type or '?'}) cannot {purpose}: these weights were not "
            f"loaded from any file and would stay random: {ckpt.describe_unloaded(self, missing)}. Set the config "
            f"keys named (only model types {', '.join(self.RANDOM_MODEL_TYPES)} are random on purpose; "
            "run.allow_random_weights=True runs anyway, e.g. to measure speed)"
        )
