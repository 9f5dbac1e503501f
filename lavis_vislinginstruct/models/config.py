"""Typed configuration of a VisLingInstruct model, validated on load.

One source of defaults: the dataclasses below. ``VisLingInstructCfg.from_omegaconf`` accepts the model section of a
LAVIS config (``arch``, ``model_type`` and the LAVIS loading keys are allowed) and rejects any unknown key with an
error that names it, so a typo in a YAML file never passes silently.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

#: Modes of Autonomous Instruction Optimization: initial instruction, rewritten only, the full method.
AIO_MODES = {"off", "rewrite", "full"}

#: Keys LAVIS itself puts in a model config; accepted and ignored by the typed config (``finetuned`` is ours).
LAVIS_KEYS = {"arch", "model_type", "load_finetuned", "load_pretrained", "pretrained"}


@dataclass
class VisionCfg:
    """EVA ViT-g/14 geometry as InstructBLIP uses it (the last of EVA-CLIP's 40 blocks removed)."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1408
    depth: int = 39  # penultimate-layer features: EVA-CLIP-g has 40 blocks
    num_heads: int = 16
    mlp_ratio: float = 4.3637
    drop_path_rate: float = 0.0
    use_grad_checkpoint: bool = False
    precision: str = "fp16"  # weight dtype on GPU: fp16 | fp32 (always fp32 on CPU)
    freeze: bool = True
    checkpoint: str = ""  # eva_vit_g.pth URL or local path; read only by the loader


@dataclass
class QFormerCfg:
    """Instruction-aware Q-Former with BERT-base geometry."""

    num_query_token: int = 32
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_freq: int = 2  # cross-attention to the image in every second layer
    vocab_size: int = 30523  # bert-base-uncased plus [DEC]
    max_position_embeddings: int = 512
    tokenizer: str = "bert-base-uncased"  # local path, HF id or a bundled tiny tokenizer name
    max_txt_len: int = 128  # instruction tokens kept (left truncation), Q-Former and LLM alike


@dataclass
class LLMCfg:
    """The frozen language model and how to get it."""

    family: str = "decoder_only"  # decoder_only (Vicuna / LLaMA) | encoder_decoder (FlanT5)
    model: str = ""  # local path or HF id of the pretrained LLM; empty: random weights from `config`
    tokenizer: str = ""  # defaults to `model`
    config: Dict[str, Any] = field(default_factory=dict)  # HF config fields used to build the LLM without files
    dtype: str = "auto"  # auto: fp16 (decoder_only) / bf16 (encoder_decoder) on GPU, fp32 on CPU
    max_output_txt_len: int = 256


@dataclass
class CMAACfg:
    """Cross-Modal Alignment Attention (paper eq. 1): query outputs attend over the instruction's states."""

    enabled: bool = True
    scale: str = "inv_sqrt_d"  # inv_sqrt_d: softmax(Q T^T / sqrt(d)) ; none: softmax(Q T^T) as printed in eq. 1


@dataclass
class AIOCfg:
    """Autonomous Instruction Optimization defaults (used at inference only)."""

    mode: str = "off"  # off | rewrite | full
    select: str = "generated"  # generated (paper) | best_ias (keep the lowest-IAS of initial, rewritten, generated)
    rewrite_template: str = (
        "There is the text {}. Please modify the text to make it better while retaining the sentence structure "
        "and keywords."
    )
    ias_prompt: str = "Based on the image given, the most appropriate instruction should be:"
    compare_template: str = "Instruction: {instruction} Score: {score:.2f}"
    compare_cue: str = "Write a new instruction with a lower score. Instruction:"
    max_new_tokens: int = 0  # cap for rewritten/optimized instructions; 0: 1.25 x the longest initial one + 4
    num_beams: int = 1
    memoize_rewrites: bool = True


@dataclass
class VisLingInstructCfg:
    """Everything needed to build (and then load) a VisLingInstruct model."""

    vision: VisionCfg = field(default_factory=VisionCfg)
    qformer: QFormerCfg = field(default_factory=QFormerCfg)
    llm: LLMCfg = field(default_factory=LLMCfg)
    cmaa: CMAACfg = field(default_factory=CMAACfg)
    aio: AIOCfg = field(default_factory=AIOCfg)
    prompt: str = ""  # default instruction for `generate` when a sample brings none
    checkpoint: str = ""  # InstructBLIP (LAVIS `*_trimmed.pth`) URL or path, loaded over the built model
    finetuned: str = ""  # VisLingInstruct checkpoint (trainable keys only) loaded after `checkpoint`
    hf_checkpoint: str = ""  # alternative: a HF `Salesforce/instructblip-*` state dict (.bin/.safetensors or dir)
    freeze_qformer: bool = True  # the paper trains only the projection (and CMAA parameters, if any)
    freeze_llm: bool = True

    @classmethod
    def from_omegaconf(cls, cfg: Any) -> "VisLingInstructCfg":
        """Build from a LAVIS model config (DictConfig or dict); unknown keys raise ``ValueError`` naming them."""
        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})
        data = {k: v for k, v in data.items() if k not in LAVIS_KEYS}
        return _build(cls, data, "model")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: Dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {', '.join(where + '.' + k for k in unknown)}; "
            f"valid keys of {where}: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def choice(value: str, allowed, what: str) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming ``what``."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, got {value!r}")
    return value


def resolve_dtype(name: str, family: str, device_type: str) -> Optional[str]:
    """LLM weight dtype: fp32 on CPU; fp16 for Vicuna and bf16 for FlanT5 on GPU, as InstructBLIP."""
    if name != "auto":
        return name
    if device_type == "cpu":
        return "fp32"
    return "fp16" if family == "decoder_only" else "bf16"
