"""Typed configuration of a VisLingInstruct model, validated on load.

One source of defaults: the dataclasses below. ``VisLingInstructCfg.from_omegaconf`` accepts the model section of a
LAVIS config (``arch``, ``model_type`` and the LAVIS loading keys are allowed) and rejects any unknown key with an
error that names it, so a typo in a YAML file never passes silently.
"""
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from ..aio.config import AIO_MODES, AIOCfg, check_choices, choices  # noqa: F401  (AIO_MODES re-exported)

#: Keys LAVIS itself puts in a model config; accepted and ignored by the typed config (``finetuned`` is ours).
LAVIS_KEYS = {"arch", "model_type", "load_finetuned", "load_pretrained", "pretrained"}
#: ``llm.device_map`` values: accelerate's strategies or one device.
DEVICE_MAP = r"auto|balanced|balanced_low_0|sequential|cpu|cuda(:\d+)?"


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
    precision: str = choices("fp16", ("fp16", "fp32"))  # weight dtype on GPU (always fp32 on CPU)
    freeze: bool = True
    checkpoint: str = ""  # eva_vit_g.pth URL or local path; read only by the loader

    def __post_init__(self):
        check_choices(self, "model.vision")


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
    # Instruction tokens kept, cut from the left: the Q-Former's text always; the LLM's input in training and in
    # the IAS (never in generation or ranking). One value for both, as the official code's one `max_txt_len`
    # (Zhudongsheng75/VisLingInstruct vislinginstruct/models/my_mmlm_vicuna.py:59,74 left-truncating tokenizers,
    # :167-171 and :200-207 training, :297-301 generation, :529-533 and :600-607 ranking). 512 as every official
    # config (eval_configs/eval_vicuna7b.yaml:23, eval_flant5.yaml:20, train_configs/finetune_my_mmlm_*.yaml:25);
    # LAVIS main's default is 128. At most `max_position_embeddings` (the Q-Former's text positions).
    max_txt_len: int = 512


@dataclass
class LLMCfg:
    """The frozen language model and how to get it."""

    family: str = choices("decoder_only", ("decoder_only", "encoder_decoder"))  # Vicuna (LLaMA) | FlanT5
    model: str = ""  # local path or HF id of the pretrained LLM; empty: random weights from `config`
    tokenizer: str = ""  # defaults to `model`
    config: Dict[str, Any] = field(default_factory=dict)  # HF config fields used to build the LLM without files
    dtype: str = choices("auto", ("auto", "fp16", "bf16", "fp32"))  # auto: fp16 Vicuna / bf16 T5 on GPU, fp32 on CPU
    max_output_txt_len: int = 256
    # Low-memory loading of `model` (transformers' BitsAndBytesConfig; CUDA and bitsandbytes needed): linear layers
    # in 8-bit (LLM.int8()) or 4-bit (NF4, double quantization, `dtype` compute); ViT, Q-Former, projection unchanged.
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    # "" keeps the LLM with the rest of the model; auto | balanced | balanced_low_0 | sequential (accelerate) split
    # it over the visible GPUs (then CPU), or a device such as cuda:1 puts it there. Passed to from_pretrained.
    device_map: str = ""

    def __post_init__(self):
        check_choices(self, "model.llm")
        if self.family == "encoder_decoder" and self.dtype == "fp16":
            # FlanT5 overflows in fp16 (LAVIS issue 206: garbage output); LAVIS and the official
            # my_mmlm_flant5.py:79 keep T5's weights in bf16 and run it under bf16 autocast.
            raise ValueError(
                "model.llm.dtype=fp16 is not supported for FlanT5 (model.llm.family=encoder_decoder): T5's "
                "activations overflow in fp16 and it writes garbage (LAVIS issue 206). Use model.llm.dtype=bf16 "
                "(or auto: bf16 on GPU, fp32 on CPU), or fp32"
            )
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("model.llm.load_in_8bit and model.llm.load_in_4bit exclude each other: choose one")
        if self.device_map and not re.fullmatch(DEVICE_MAP, self.device_map):
            raise ValueError(
                f"model.llm.device_map must be auto, balanced, balanced_low_0, sequential or a device "
                f"(cpu, cuda, cuda:N), got {self.device_map!r}"
            )
        if self.placed and not self.model:
            what = "load_in_8bit" if self.load_in_8bit else "load_in_4bit" if self.load_in_4bit else "device_map"
            raise ValueError(f"model.llm.{what} needs model.llm.model (a pretrained LLM to load); this LLM is built "
                             f"from llm.config with random weights")

    @property
    def placed(self) -> bool:
        """True when ``from_pretrained`` places the LLM (quantized or ``device_map``): nothing moves or casts it."""
        return self.load_in_8bit or self.load_in_4bit or bool(self.device_map)


@dataclass
class CMAACfg:
    """Cross-Modal Alignment Attention (paper eq. 1): query outputs attend over the instruction's states."""

    enabled: bool = True
    scale: str = choices("inv_sqrt_d", ("inv_sqrt_d", "none"))  # softmax(Q T^T / sqrt(d)) | softmax(Q T^T) (eq. 1)

    def __post_init__(self):
        check_choices(self, "model.cmaa")


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

    def __post_init__(self):
        if self.qformer.max_txt_len > self.qformer.max_position_embeddings:
            raise ValueError(
                f"model.qformer.max_txt_len={self.qformer.max_txt_len} exceeds the Q-Former's text positions, "
                f"model.qformer.max_position_embeddings={self.qformer.max_position_embeddings}"
            )

    @classmethod
    def from_omegaconf(cls, cfg: Any) -> "VisLingInstructCfg":
        """Build from a LAVIS model config (DictConfig or dict); unknown keys raise ``ValueError`` naming them."""
        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})
        data = {k: v for k, v in data.items() if k not in LAVIS_KEYS}
        return _build(cls, data, "model")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: Dict[str, Any], where: str):
    """Instantiate dataclass ``cls`` from ``data``, rejecting unknown keys and values of the wrong type or choice."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {', '.join(where + '.' + k for k in unknown)}; "
            f"valid keys of {where}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name} is a section ({', '.join(sorted(vars(default)))}), got {value!r}")
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        else:
            if value is None and f.default == "":  # YAML `key: null` / `key:` for an unset path
                value = ""
            kwargs[name] = check_value(value, hints[name], f.metadata.get("choices"), f"{where}.{name}")
    return cls(**kwargs)


def check_value(value: Any, kind: Any, allowed: Optional[tuple], what: str) -> Any:
    """``value`` as a ``kind`` (bool, int, float, str or a dict), or a ValueError naming ``what`` and the value.

    YAML 1.1 reads a bare ``off`` as false: for a choice field that allows ``"off"``, ``False`` means ``"off"``.
    """
    if allowed is not None and value is False and "off" in allowed:
        value = "off"
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(kind)
    if ok is None:  # Dict[str, Any] and other containers
        ok = isinstance(value, dict) if typing.get_origin(kind) is dict else True
    if not ok:
        name = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))
        raise ValueError(f"{what} must be {name}, got {value!r} ({type(value).__name__})")
    if kind is float:
        value = float(value)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


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
