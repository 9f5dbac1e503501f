"""All weight I/O of the model: the ViT, the LLM, InstructBLIP checkpoints (LAVIS or HF layout), fine-tuned weights.

- LAVIS's ``instruct_blip_*_trimmed.pth`` holds only what InstructBLIP trained (``query_tokens``, ``ln_vision``,
  ``Qformer.bert``, ``llm_proj``/``t5_proj``); the ViT comes from ``eva_vit_g.pth`` and the LLM from its own files.
- HF's ``Salesforce/instructblip-*`` holds everything under other names: :func:`remap_hf_instructblip` is a pure
  key/tensor mapping onto LAVIS's names (the renames of HF's conversion script, read in reverse).
- A VisLingInstruct checkpoint holds only the trainable parameters (the model's ``state_dict()``, also what LAVIS's
  stock ``RunnerBase`` saves) and loads on top of InstructBLIP (``finetuned``) or into the same configuration
  (``run.resume_ckpt_path``, through the model's ``load_state_dict``); it must hold every trainable parameter.

Every load reports missing and unexpected keys: unexpected keys raise :class:`CheckpointKeyError` (a checkpoint for
another architecture must never half-load silently); missing keys that the source is known not to hold are
logged at debug level, the rest as warnings. Every load also records, in the model's ``weight_sources``, which file
each parameter came from, so that a model whose pretrained parts would stay random is caught before it evaluates.
"""
import importlib.util
import logging
import os
import re
from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional

import torch
from lavis.common.dist_utils import download_cached_file
from lavis.common.utils import is_url

from .config import VisLingInstructCfg, resolve_dtype

logger = logging.getLogger(__name__)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class CheckpointKeyError(KeyError):
    """A checkpoint holds keys the model does not have, or lacks a trainable parameter it must hold.

    A ``KeyError``, not the ``RuntimeError`` PyTorch raises for key mismatches: LAVIS 1.0.2's
    ``RunnerBase._reload_best_model`` catches ``RuntimeError`` and reloads with ``strict=False``, which must not
    happen to a checkpoint of another model.
    """

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def read_state_dict(url_or_path: str) -> Dict[str, torch.Tensor]:
    """A state dict from a URL (LAVIS's download cache), a ``.pth``/``.bin``/``.safetensors`` file or a HF folder."""
    if is_url(url_or_path):
        path = download_cached_file(url_or_path, check_hash=False, progress=True)
    else:
        path = os.path.expanduser(url_or_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {url_or_path}")
    if os.path.isdir(path):
        return _read_folder(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path named
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        ckpt = ckpt["model"]
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} does not hold a state dict")
    return ckpt


def _read_folder(path: str) -> Dict[str, torch.Tensor]:
    files = sorted(f for f in os.listdir(path) if f.endswith((".safetensors", ".bin")) and "index" not in f)
    if not files:
        raise FileNotFoundError(f"no .safetensors or .bin weights in {path}")
    state: Dict[str, torch.Tensor] = {}
    for f in files:
        state.update(read_state_dict(os.path.join(path, f)))
    return state


def load_state_dict_checked(
    model: torch.nn.Module, state_dict: Dict[str, torch.Tensor], source: str, expected_missing: Iterable[str] = ()
) -> Dict[str, List[str]]:
    """``load_state_dict(strict=False)`` that fails on unexpected keys and reports missing ones.

    Args:
        model: the model to load into.
        state_dict: the weights.
        source: what the weights are (named in messages).
        expected_missing: key prefixes the source is known not to hold (e.g. ``visual_encoder.`` for a trimmed
            InstructBLIP checkpoint); missing keys under them are not warned about.

    Returns:
        ``{"missing": [...], "unexpected": []}``.
    """
    own = full_state_dict(model)
    unexpected = sorted(k for k in state_dict if k not in own)
    if unexpected:
        shown = ", ".join(unexpected[:10]) + (f" ... ({len(unexpected)} in all)" if len(unexpected) > 10 else "")
        raise CheckpointKeyError(f"{source}: unexpected keys not in {type(model).__name__}: {shown}")
    mismatched = [k for k, v in state_dict.items() if tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        detail = ", ".join(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5])
        raise ValueError(f"{source}: shape mismatch for {len(mismatched)} key(s): {detail}")
    result = model.load_state_dict(state_dict, strict=False)
    prefixes = tuple(expected_missing)
    surprising = [k for k in result.missing_keys if not k.startswith(prefixes)]
    if surprising:
        logger.warning("%s: %d keys missing: %s", source, len(surprising), ", ".join(surprising[:20]))
    logger.info("%s: loaded %d tensors, %d keys not in it", source, len(state_dict), len(result.missing_keys))
    return {"missing": list(result.missing_keys), "unexpected": []}


def remap_hf_instructblip(state_dict: Dict[str, torch.Tensor], family: str) -> Dict[str, torch.Tensor]:
    """HF ``InstructBlipForConditionalGeneration`` weights renamed to LAVIS InstructBLIP names (pure function).

    The ViT's fused ``qkv.bias`` (q, zeros, v) is split back into ``q_bias`` and ``v_bias``.

    Args:
        state_dict: HF weights.
        family: ``decoder_only`` (-> ``llm_*``) or ``encoder_decoder`` (-> ``t5_*``).
    """
    llm, proj = ("llm_model", "llm_proj") if family == "decoder_only" else ("t5_model", "t5_proj")
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("self_attn.qkv.bias") and key.startswith("vision_model."):
            base = _rename_vision(key[: -len("qkv.bias")])
            q, _, v = value.chunk(3)
            out[base + "q_bias"], out[base + "v_bias"] = q, v
            continue
        new = _rename(key, llm, proj)
        if new is not None:
            out[new] = value
    return out


_VISION = [
    (r"^vision_model\.embeddings\.class_embedding$", "visual_encoder.cls_token"),
    (r"^vision_model\.embeddings\.position_embedding$", "visual_encoder.pos_embed"),
    (r"^vision_model\.embeddings\.patch_embedding\.", "visual_encoder.patch_embed.proj."),
    (r"^vision_model\.post_layernorm\.", "ln_vision."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.", r"visual_encoder.blocks.\1."),
    (r"\.layer_norm([12])\.", r".norm\1."),
    (r"\.self_attn\.projection\.", ".attn.proj."),
    (r"\.self_attn\.qkv\.", ".attn.qkv."),
    (r"\.self_attn\.", ".attn."),
]
_QFORMER = [
    (r"^qformer\.", "Qformer.bert."),
    (r"\.embeddings\.layernorm\.", ".embeddings.LayerNorm."),
    (r"\.attention\.attention\.", ".attention.self."),
    (r"\.crossattention\.attention\.", ".crossattention.self."),
]


def _rename_vision(key: str) -> str:
    for pattern, repl in _VISION:
        key = re.sub(pattern, repl, key)
    return key


def _rename(key: str, llm: str, proj: str) -> Optional[str]:
    if key.startswith("vision_model."):
        return _rename_vision(key)
    if key.startswith("qformer."):
        for pattern, repl in _QFORMER:
            key = re.sub(pattern, repl, key)
        return key
    if key == "query_tokens":
        return key
    if key.startswith("language_projection."):
        return proj + key[len("language_projection") :]
    if key.startswith("language_model."):
        return llm + key[len("language_model") :]
    return None


def _expected_missing(model) -> List[str]:
    """Keys an InstructBLIP checkpoint never holds: the ViT and LLM (own files) and VisLingInstruct's additions."""
    return ["visual_encoder.", model.adapter.model_attr + ".", "cmaa.", "Qformer.bert.embeddings.position_ids"]


def cuda_available() -> bool:
    """Whether a CUDA device is visible (one place, so tests can stand in for a GPU)."""
    return torch.cuda.is_available()


def llm_loading_kwargs(cfg: VisLingInstructCfg) -> Dict:
    """``from_pretrained`` keyword arguments of the LLM: dtype, and the low-memory settings of ``llm``.

    Raises:
        ValueError: 8/4-bit loading without CUDA or without bitsandbytes installed.
    """
    llm = cfg.llm
    dtype = DTYPES[resolve_dtype(llm.dtype, llm.family, "cuda" if cuda_available() else "cpu")]
    kwargs: Dict = {"torch_dtype": dtype}
    if llm.load_in_8bit or llm.load_in_4bit:
        what = "model.llm.load_in_8bit" if llm.load_in_8bit else "model.llm.load_in_4bit"
        if not cuda_available():
            raise ValueError(f"{what} needs a CUDA GPU (bitsandbytes quantizes on the GPU); this machine has none")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(f"{what} needs bitsandbytes: pip install -e '.[lowmem]'")
        from transformers import BitsAndBytesConfig

        if llm.load_in_8bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype,
            )
        kwargs["device_map"] = llm.device_map or {"": torch.cuda.current_device()}
    elif llm.device_map:
        kwargs["device_map"] = llm.device_map
    if "device_map" in kwargs and importlib.util.find_spec("accelerate") is None:
        raise ValueError("model.llm.device_map and 8/4-bit loading need accelerate: pip install -e '.[lowmem]'")
    return kwargs


def load_pretrained_llm(model, cfg: VisLingInstructCfg) -> None:
    """Replace the LLM skeleton by the pretrained one at ``llm.model`` (frozen, resized to the tokenizer), in 8/4 bit
    or split over devices when ``llm`` says so (:func:`llm_loading_kwargs`)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    kwargs = llm_loading_kwargs(cfg)
    if cfg.llm.family == "decoder_only":
        llm = AutoModelForCausalLM.from_pretrained(cfg.llm.model, **kwargs)
    else:
        from transformers import AutoConfig

        hf_cfg = AutoConfig.from_pretrained(cfg.llm.model)
        hf_cfg.dense_act_fn = "gelu"
        llm = AutoModelForSeq2SeqLM.from_pretrained(cfg.llm.model, config=hf_cfg, **kwargs)
    llm.resize_token_embeddings(len(model.adapter.tokenizer))
    setattr(model, model.adapter.model_attr, llm)


def load_weights(model, cfg: VisLingInstructCfg) -> None:
    """Load everything the config names, in order: ViT, LLM, InstructBLIP, HF InstructBLIP, fine-tuned.

    Each parameter's file is recorded in ``model.weight_sources``; the summary is logged.
    """
    model.weight_sources.clear()
    if cfg.vision.checkpoint:
        from lavis.models.eva_vit import interpolate_pos_embed

        state = read_state_dict(cfg.vision.checkpoint)
        interpolate_pos_embed(model.visual_encoder, state)
        result = model.visual_encoder.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise CheckpointKeyError(f"{cfg.vision.checkpoint}: unexpected ViT keys {result.unexpected_keys[:10]}")
        if result.missing_keys:
            logger.warning("ViT keys missing from %s: %s", cfg.vision.checkpoint, result.missing_keys[:10])
        mark_loaded(model, ["visual_encoder." + k for k in state], cfg.vision.checkpoint)
    if cfg.llm.model:
        load_pretrained_llm(model, cfg)
        mark_loaded(model, [f"{model.adapter.model_attr}.{k}" for k in full_state_dict(model.llm)], cfg.llm.model)
    if any(p.is_meta for p in model.parameters()):
        raise ValueError("the LLM was not loaded: set llm.model to the pretrained LLM's folder")
    if cfg.checkpoint:
        state = read_state_dict(cfg.checkpoint)
        load_state_dict_checked(model, state, cfg.checkpoint, _expected_missing(model))
        mark_loaded(model, state, cfg.checkpoint)
    if cfg.hf_checkpoint:
        state = remap_hf_instructblip(read_state_dict(cfg.hf_checkpoint), cfg.llm.family)
        _trim_vocab(model, state)
        load_state_dict_checked(model, state, cfg.hf_checkpoint, ["cmaa.", "Qformer.bert.embeddings.position_ids"])
        mark_loaded(model, state, cfg.hf_checkpoint)
    model.apply_freezing()
    if cfg.finetuned:
        state = read_state_dict(cfg.finetuned)
        check_checkpoint_keys(model, state, cfg.finetuned)
        model.keep_base_projection()  # InstructBLIP's projection, for the Vanilla variant of the same weights
        load_state_dict_checked(model, state, cfg.finetuned, [""])
        mark_loaded(model, state, cfg.finetuned)
    _set_dtypes(model, cfg)
    model.mark_weights_changed()
    logger.info("weights of %s: %s", type(model).__name__, describe_sources(model))


def _trim_vocab(model, state: Dict[str, torch.Tensor]) -> None:
    """HF's 2024 InstructBLIP configs pad the LLaMA vocabulary (32001 -> 32064 and more): keep our rows."""
    own = full_state_dict(model)
    for key, value in list(state.items()):
        rows_only = key in own and value.dim() == 2 and value.shape[1:] == own[key].shape[1:]
        if rows_only and value.shape[0] > own[key].shape[0]:
            if key.endswith(("embed_tokens.weight", "lm_head.weight", "shared.weight")):
                state[key] = value[: own[key].shape[0]]


def _set_dtypes(model, cfg: VisLingInstructCfg) -> None:
    """GPU dtypes of InstructBLIP (fp16 ViT, fp16 Vicuna, bf16 T5); everything fp32 on a CPU-only machine."""
    if not cuda_available():
        return
    if cfg.vision.precision == "fp16":
        vit_to_fp16(model.visual_encoder)
    if cfg.llm.placed:  # quantized or dispatched by from_pretrained, already in its dtype: a cast would break it
        return
    llm_dtype = DTYPES[resolve_dtype(cfg.llm.dtype, cfg.llm.family, "cuda")]
    model.llm.to(llm_dtype)


def vit_to_fp16(vit: torch.nn.Module) -> None:
    """LAVIS's ``convert_weights_to_fp16``: conv and linear weights only, so positional embeddings and norms stay
    fp32 and the ViT's output (the residual stream) is fp32, the dtype the fp32 Q-Former expects."""
    from lavis.models.eva_vit import convert_weights_to_fp16

    convert_weights_to_fp16(vit)


def full_state_dict(module: torch.nn.Module, keep_vars: bool = False) -> Dict[str, torch.Tensor]:
    """PyTorch's state dict of ``module``: every parameter and persistent buffer (VisLingInstruct's own
    ``state_dict()`` is its checkpoint, the trainable parameters only)."""
    return torch.nn.Module.state_dict(module, keep_vars=keep_vars)


def trainable_state_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Only the parameters that train (projection and CMAA's, if any), on the CPU: what a checkpoint holds."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu() for k, v in full_state_dict(model).items() if k in names}


def parameter_names(model: torch.nn.Module) -> Dict[str, str]:
    """Every state-dict key that is a parameter -> the parameter's ``named_parameters`` name.

    Tied tensors appear once in ``named_parameters`` but under each alias in the state dict (T5's ``shared`` and
    ``encoder/decoder.embed_tokens``); buffers are left out.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    return {k: names[id(v)] for k, v in full_state_dict(model, keep_vars=True).items() if id(v) in names}


def check_checkpoint_keys(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """A checkpoint for ``model``: only keys the model has, and every trainable parameter (under any alias).

    Raises:
        CheckpointKeyError: Naming the unexpected keys and the missing trainable parameters (up to 10 of each).
    """
    aliases = parameter_names(model)
    own = full_state_dict(model)
    unexpected = sorted(k for k in state_dict if k not in own)
    held = {aliases.get(k, k) for k in state_dict}
    absent = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in held)
    problems = []
    if unexpected:
        problems.append(f"unexpected keys not in {type(model).__name__}: {_shown(unexpected)}")
    if absent:
        problems.append(f"lacks trainable parameters of this model: {_shown(absent)}")
    if problems:
        raise CheckpointKeyError(f"{source}: " + "; ".join(problems))


def _shown(keys: List[str]) -> str:
    return ", ".join(keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "")


def mark_loaded(model, keys: Iterable[str], source: str) -> None:
    """Record ``source`` as the origin of the parameters behind ``keys`` (``model.weight_sources``)."""
    aliases = parameter_names(model)
    for key in keys:
        if key in aliases:
            model.weight_sources[aliases[key]] = source


def _groups(model, names: Iterable[str]) -> Counter:
    return Counter(name.split(".")[0] for name in names)


def describe_sources(model) -> str:
    """One line: each top-level module and the files its parameters came from (``random`` where none did)."""
    parts = []
    for group, total in _groups(model, (n for n, _ in model.named_parameters())).items():
        files = sorted({src for n, src in model.weight_sources.items() if n.split(".")[0] == group})
        loaded = sum(1 for n in model.weight_sources if n.split(".")[0] == group)
        random = "" if loaded == total else f"random ({total - loaded} of {total} tensors)"
        parts.append(f"{group} <- {', '.join(files + ([random] if random else []))}")
    return "; ".join(parts)


def describe_unloaded(model, names: Iterable[str]) -> str:
    """The modules of the parameters ``names``, with how many of their tensors and the config keys that load them."""
    proj, llm = model.adapter.proj_attr, model.adapter.model_attr
    instructblip = "model.checkpoint or model.hf_checkpoint (the InstructBLIP weights)"
    hints = {
        "visual_encoder": "model.vision.checkpoint (eva_vit_g.pth), or a checkpoint holding the ViT",
        "ln_vision": instructblip,
        "query_tokens": instructblip,
        "Qformer": instructblip,
        llm: "model.llm.model (the pretrained LLM), or model.hf_checkpoint",
        proj: "model.checkpoint, model.hf_checkpoint or model.finetuned",
    }
    totals = _groups(model, (n for n, _ in model.named_parameters()))
    missing = _groups(model, names)
    return "; ".join(
        f"{group} ({missing[group]} of {totals[group]} tensors) [{hints.get(group, 'a checkpoint holding them')}]"
        for group in totals
        if missing[group]
    )
