"""VisLingInstruct (Zhu et al., NAACL 2024): InstructBLIP with Enhanced Multi-modal Alignment (EMA).

One core model for both LLM families; two thin registered names fix the family:
``vislinginstruct_vicuna`` (types vicuna7b, vicuna13b, tiny) and ``vislinginstruct_t5`` (flant5xl, flant5xxl, tiny).

The model is the architecture and LAVIS's plain inference API. Data flow of one sample (shapes for the real models):

1. ``encode_image``: EVA ViT-g/14 + ``ln_vision``: image (3, 224, 224) -> (257, 1408). Runs once per image per call.
2. ``visual_prefix``: the instruction-aware Q-Former reads the 32 query tokens and the instruction's tokens and
   cross-attends to the image: query outputs (32, 768) and instruction states (N, 768). With CMAA on, the query
   outputs attend over the instruction states (eq. 1) and the result U_mm (32, 768) is appended: 64 tokens, then
   a projection maps them into the LLM's embedding space.
3. The LLM adapter computes the loss, generates, or ranks candidates (``llm_adapters.py``).

CMAA is parameter-free, and the model keeps two projections when a fine-tuned one was loaded over InstructBLIP's
(``projection="base"``: InstructBLIP's; ``"finetuned"``: the loaded one), so one loaded model computes every row
of Table 2 by arguments, never by changing its state (:mod:`lavis_vislinginstruct.inference`). Without arguments
it computes as its config says (``cmaa.enabled``, the loaded projection). With CMAA off and the base projection it
computes exactly what LAVIS's InstructBLIP computes for the same weights. Parameter names equal LAVIS's
(``visual_encoder``, ``ln_vision``, ``query_tokens``, ``Qformer.bert``, ``llm_proj``/``t5_proj``,
``llm_model``/``t5_model``), so the published InstructBLIP checkpoints load unchanged. What a checkpoint holds is
:mod:`.checkpoint_contract`'s job.

AIO (section 3.2) wraps inference: :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline`. The
``aio=`` argument of ``generate``/``predict_answers``/``predict_class`` is a convenience that builds one for the call.
"""
import contextlib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from lavis.common.registry import registry
from lavis.models.base_model import BaseModel

from ..paths import package_path
from . import tokenizers
from .checkpoint_contract import CheckpointContract
from .config import AIO_MODES, VisLingInstructCfg, choice
from .cross_modal_attention import CrossModalAlignmentAttention
from .generation import Decoding
from .inputs import instruction_list
from .llm import build_llm
from .llm_adapters import DecoderOnlyAdapter, EncoderDecoderAdapter
from .qformer import build_qformer
from .vision import build_vision_tower, freeze

logger = logging.getLogger(__name__)

#: Which projection maps the visual tokens into the LLM: InstructBLIP's, or the fine-tuned one (the loaded one).
PROJECTIONS = ("base", "finetuned")


class VisLingInstruct(CheckpointContract, BaseModel):
    """InstructBLIP architecture + Cross-Modal Alignment Attention; see the module docstring."""

    PRETRAINED_MODEL_CONFIG_DICT: Dict[str, str] = {}

    def __init__(self, cfg: VisLingInstructCfg):
        super().__init__()
        self.cfg = cfg
        self.model_type = ""  # set by from_config (LAVIS's model_type; the typed config does not keep it)
        self.weight_sources: Dict[str, str] = {}  # parameter name -> file it was loaded from (checkpoint.load_weights)
        family = cfg.llm.family  # its choices were checked when the config was built

        self.tokenizer = tokenizers.qformer_tokenizer(cfg.qformer.tokenizer)
        self.visual_encoder, self.ln_vision = build_vision_tower(cfg.vision)
        self.Qformer, self.query_tokens = build_qformer(cfg.qformer, cfg.vision.width)
        self.cmaa = CrossModalAlignmentAttention(cfg.cmaa.scale)  # parameter-free; used when a call turns it on

        tok_name = cfg.llm.tokenizer or cfg.llm.model
        if family == "decoder_only":
            self.llm_tokenizer = tokenizers.vicuna_tokenizer(tok_name)
            llm = build_llm(cfg, len(self.llm_tokenizer), meta=bool(cfg.llm.model))
            self.adapter = DecoderOnlyAdapter(
                llm, self.llm_tokenizer, cfg.qformer.max_txt_len, cfg.llm.max_output_txt_len
            )
        else:
            self.t5_tokenizer, self.t5_output_tokenizer = tokenizers.t5_tokenizers(tok_name)
            llm = build_llm(cfg, len(self.t5_tokenizer), meta=bool(cfg.llm.model))
            self.adapter = EncoderDecoderAdapter(
                llm, (self.t5_tokenizer, self.t5_output_tokenizer), cfg.qformer.max_txt_len, cfg.llm.max_output_txt_len
            )
        setattr(self, self.adapter.model_attr, llm)
        llm_width = llm.config.hidden_size if family == "decoder_only" else llm.config.d_model
        setattr(self, self.adapter.proj_attr, nn.Linear(cfg.qformer.hidden_size, llm_width))
        self.apply_freezing()

    # ----------------------------------------------------------------------------------------------- set-up

    @property
    def llm(self) -> nn.Module:
        return getattr(self, self.adapter.model_attr)

    def set_llm(self, llm: nn.Module) -> None:
        """Replace the language model (the loader puts the pretrained one in place of the skeleton)."""
        setattr(self, self.adapter.model_attr, llm)
        self.adapter.lm = llm

    @property
    def proj(self) -> nn.Linear:
        return getattr(self, self.adapter.proj_attr)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def apply_freezing(self) -> None:
        """Freeze ViT, Q-Former (with queries and ``ln_vision``) and LLM; log the trainable parameter count.

        Frozen modules stay in eval mode whatever ``model.train()`` says, as LAVIS does for the ViT and LLM.
        """
        if self.cfg.vision.freeze:
            freeze(self.visual_encoder)
        if self.cfg.freeze_qformer:  # frozen and pinned to eval mode: no dropout on the features the projection sees
            freeze(self.Qformer)
            freeze(self.ln_vision)
            self.query_tokens.requires_grad = False
        if self.cfg.freeze_llm:
            freeze(self.llm)
        trainable = {n: p.numel() for n, p in self.named_parameters() if p.requires_grad}
        groups = sorted({n.split(".")[0] for n in trainable})
        logger.info("trainable parameters: %d in %s", sum(trainable.values()), groups)

    def maybe_autocast(self, dtype: torch.dtype = torch.float16):
        """Autocast on GPU (fp16 for the ViT), nothing on CPU, as LAVIS."""
        if self.device.type == "cpu":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def keep_base_projection(self) -> None:
        """Keep the current projection as InstructBLIP's (``projection="base"``); the loader calls this before a
        fine-tuned projection is loaded over it. Non-persistent buffers: they follow ``.to()`` and stay out of
        ``state_dict()``, so checkpoints keep their keys."""
        self.register_buffer("base_proj_weight", self.proj.weight.detach().clone(), persistent=False)
        self.register_buffer("base_proj_bias", self.proj.bias.detach().clone(), persistent=False)
        self.base_projection_source = self.weight_sources.get(f"{self.adapter.proj_attr}.weight", "")

    def projection_source(self, projection: str) -> str:
        """The file the ``base`` or ``finetuned`` projection was loaded from ("" when none: random weights)."""
        choice(projection, PROJECTIONS, "projection")
        if projection == "base" and self.has_base_projection:
            return self.base_projection_source
        return self.weight_sources.get(f"{self.adapter.proj_attr}.weight", "")

    @property
    def has_base_projection(self) -> bool:
        """True when a fine-tuned projection was loaded over an InstructBLIP one (the two projections differ)."""
        return getattr(self, "base_proj_weight", None) is not None

    # ------------------------------------------------------------------------------------------- encoders

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """ViT features after ``ln_vision``: (B, 3, H, W) -> (B, 1 + (H/p)*(W/p), width)."""
        if not torch.is_tensor(image) or image.dim() != 4:
            shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
            raise ValueError(f"samples['image'] must be a (B, 3, H, W) tensor, got {shape}")
        with self.maybe_autocast():
            return self.ln_vision(self.visual_encoder(image))

    def visual_prefix(
        self,
        image_embeds: torch.Tensor,
        instructions: Sequence[str],
        cmaa: Optional[bool] = None,
        projection: str = "finetuned",
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """LLM input embeddings of the visual tokens for each (image, instruction) pair.

        Args:
            image_embeds: ``encode_image`` output, (B, N_img, W); row i pairs with ``instructions[i]``.
            instructions: the texts the Q-Former reads beside its queries.
            cmaa: CMAA on or off (default: ``cmaa.enabled`` of the config).
            projection: ``finetuned`` (the loaded projection) or ``base`` (InstructBLIP's, when a fine-tuned one
                was loaded over it; otherwise the same).

        Returns:
            embeds (B, P, D_llm) with P = 32 (CMAA off) or 64 (on), and their all-ones mask (B, P).
        """
        choice(projection, PROJECTIONS, "projection")
        cmaa = self.cfg.cmaa.enabled if cmaa is None else cmaa
        b = image_embeds.size(0)
        queries = self.query_tokens.expand(b, -1, -1)  # (B, Q, D)
        text = self.tokenizer(
            list(instructions), padding="longest", truncation=True, max_length=self.cfg.qformer.max_txt_len,
            return_tensors="pt",
        ).to(image_embeds.device)
        query_atts = torch.ones(queries.shape[:-1], dtype=torch.long, device=image_embeds.device)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        # step 1: queries and instruction share self-attention; queries cross-attend to the image
        hidden = self.Qformer.bert(
            text.input_ids,
            attention_mask=torch.cat([query_atts, text.attention_mask], dim=1),
            query_embeds=queries,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            return_dict=True,
        ).last_hidden_state  # (B, Q + N, D)
        q = queries.size(1)
        tokens = hidden[:, :q]  # (B, Q, D)
        # step 2 (EMA): U_mm = CMAA(query outputs, instruction states), appended after the query outputs
        if cmaa:
            u_mm = self.cmaa(tokens, hidden[:, q:], text.attention_mask)  # (B, Q, D)
            tokens = torch.cat([tokens, u_mm], dim=1)  # (B, 2Q, D)
        # step 3: into the LLM's embedding space
        if projection == "base" and self.has_base_projection:
            embeds = F.linear(tokens, self.base_proj_weight, self.base_proj_bias)
        else:
            embeds = self.proj(tokens)
        return embeds, torch.ones(embeds.shape[:-1], dtype=torch.long, device=embeds.device)

    # -------------------------------------------------------------------------------------------- training

    def forward(self, samples: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Training loss (paper eq. 2) of ``samples['text_output']`` given the image and ``text_input``."""
        instructions = self._texts(samples, "text_input")
        targets = self._texts(samples, "text_output", allow_empty=True)
        if len(targets) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(targets)} text_output targets")
        prefix, prefix_mask = self.visual_prefix(self.encode_image(samples["image"]), instructions)
        return {"loss": self.adapter.loss(prefix, prefix_mask, instructions, targets)}

    # ------------------------------------------------------------------------------------------- inference
    # LAVIS's API: each call is answered by a pipeline built for it (:meth:`pipeline`), the one inference path.

    @torch.no_grad()
    def generate(
        self,
        samples: Dict[str, Any],
        use_nucleus_sampling: bool = False,
        num_beams: int = 5,
        max_length: int = 256,
        min_length: int = 1,
        top_p: float = 0.9,
        repetition_penalty: float = 1.5,
        length_penalty: float = 1,
        num_captions: int = 1,
        temperature: float = 1,
        aio: Optional[str] = None,
        return_traces: bool = False,
    ) -> Union[List[str], Tuple[List[str], List[Any]]]:
        """One generated text per sample (``num_captions`` per sample when sampling several), batched.

        Args:
            samples: ``image`` (B, 3, H, W), ``text_input`` (the instructions; or LAVIS's ``prompt``) and, for AIO,
                optionally ``keep_spans`` (per sample, the task content an optimized instruction must keep).
            aio: ``off``, ``rewrite`` or ``full`` (default: ``model.aio.mode``); the answer uses ``trace.used``.
            return_traces: Also return one :class:`~lavis_vislinginstruct.aio.trace.AIOTrace` per sample.
            The rest: LAVIS's InstructBLIP decoding arguments (``max_length``/``min_length`` count new tokens).

        Returns:
            The texts, or ``(texts, traces)`` with ``return_traces``.
        """
        decoding = Decoding.from_lavis(
            max_length, min_length, num_beams, use_nucleus_sampling, top_p, temperature, repetition_penalty,
            length_penalty, num_captions,
        )
        return self.pipeline(aio).generate(samples, decoding, return_traces=return_traces)

    def predict_answers(
        self,
        samples: Dict[str, Any],
        num_beams: int = 5,
        inference_method: str = "generate",
        max_len: int = 10,
        min_len: int = 1,
        num_ans_candidates: int = 128,
        answer_list: Optional[List[str]] = None,
        prompt: str = "",
        length_penalty: Optional[float] = None,
        aio: Optional[str] = None,
        return_traces: bool = False,
        **kwargs,
    ) -> Union[List[str], Tuple[List[str], List[Any]]]:
        """Short answers for VQA (LAVIS signature). ``prompt`` with ``{}`` is filled with each ``text_input``.

        Only ``inference_method="generate"`` exists, as in InstructBLIP; ``answer_list`` is not used.
        ``return_traces`` as :meth:`generate`.
        """
        if inference_method != "generate":
            raise ValueError(f"inference_method must be 'generate', got {inference_method!r}")
        texts = self._texts(samples, "text_input")
        if prompt:
            samples = {**samples, "text_input": [prompt.format(t) if "{}" in prompt else prompt for t in texts]}
        return self.generate(
            samples, num_beams=num_beams, max_length=max_len, min_length=min_len,
            length_penalty=self.answer_length_penalty() if length_penalty is None else length_penalty,
            aio=aio, return_traces=return_traces,
        )

    def answer_length_penalty(self) -> float:
        """InstructBLIP's ``predict_answers`` length penalty per family: 0 for Vicuna, -1 for FlanT5."""
        return 0 if self.cfg.llm.family == "decoder_only" else -1

    @torch.no_grad()
    def predict_class(
        self,
        samples: Dict[str, Any],
        candidates: Optional[Sequence[Sequence[str]]] = None,
        n_segments: int = 1,
        score: str = "sum",
        aio: Optional[str] = None,
        chunk_size: int = 128,
        return_traces: bool = False,
        return_greedy: bool = False,
    ) -> Dict[str, List[Any]]:
        """Rank candidate answers by LM loss (lowest first).

        Args:
            samples: ``image``, ``text_input`` (the formatted instruction) and, if ``candidates`` is None,
                ``candidates``.
            candidates: one list per sample (lengths may differ), or one list shared by the whole batch.
            n_segments: accepted for LAVIS compatibility; chunking is governed by ``chunk_size``.
            score: ``sum`` of the candidate tokens' NLL (default: LAVIS's ``_predict_class`` and the paper) or their
                ``mean`` (per token; does not favour short candidates as the sum does).
            aio: instruction optimization mode (``off``/``rewrite``/``full``); defaults to the config's.
            chunk_size: candidate rows scored per LLM call.
            return_traces: also return the AIO traces under ``"traces"``.
            return_greedy: also say, per candidate, whether greedy decoding would produce it (lmms-eval's
                ``is_greedy``), under ``"greedy"``.

        Returns:
            ``{"rankings": [[best_idx, ...], ...], "scores": [[nll per candidate], ...]}`` (+ ``"traces"``,
            ``"greedy": [[bool per candidate], ...]``).
        """
        return self.pipeline(aio).predict_class(
            samples, candidates, score=score, chunk_size=chunk_size, return_traces=return_traces,
            return_greedy=return_greedy,
        )

    def rank(
        self, prefix, prefix_mask, prompts: Sequence[str], candidates: List[List[str]], score: str = "sum",
        chunk_size: int = 128, return_greedy: bool = False,
    ) -> Dict[str, List[Any]]:
        """``predict_class``'s result for candidates after a visual prefix and the prompts."""
        ranked = self.adapter.rank(
            prefix, prefix_mask, list(prompts), candidates, reduction=score, chunk_size=chunk_size,
            return_greedy=return_greedy,
        )
        scores, greedy = ranked if return_greedy else (ranked, None)
        rankings = [sorted(range(len(s)), key=lambda j, s=s: (s[j], j)) for s in scores]
        out: Dict[str, List[Any]] = {"rankings": rankings, "scores": scores}
        if return_greedy:
            out["greedy"] = greedy
        return out

    # ------------------------------------------------------------------------------------------- helpers

    def instructions(self, samples: Dict[str, Any], n: int) -> List[str]:
        """The instruction of each of the ``n`` samples: ``text_input`` (or LAVIS's ``prompt``, or the config's
        default ``prompt``); one string is used for every sample."""
        key = "text_input" if "text_input" in samples else "prompt"
        instructions = instruction_list(samples, key, n, default=self.cfg.prompt)
        if len(instructions) != n:
            raise ValueError(f"{n} images but {len(instructions)} instructions")
        return instructions

    def pipeline(self, aio: Optional[str] = None):
        """A :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline` computing as this model's
        config says (``cmaa.enabled``, the loaded projection, the ``aio`` section), with ``aio`` as its AIO mode
        (default: ``aio.mode``). LAVIS's API builds one per call and keeps nothing."""
        from ..inference.pipeline import VisLingInstructPipeline
        from ..inference.rows import config_row

        mode = aio or self.cfg.aio.mode
        if mode not in AIO_MODES:
            raise ValueError(f"aio.mode must be one of {', '.join(AIO_MODES)}, got {mode!r}")
        return VisLingInstructPipeline(self, config_row(self.cfg, mode))

    def _texts(self, samples: Dict[str, Any], key: str, allow_empty: bool = False, default: str = "") -> List[str]:
        n = samples["image"].size(0) if torch.is_tensor(samples.get("image")) else None
        return instruction_list(samples, key, n, default=default, allow_empty=allow_empty)

    def to(self, *args, **kwargs):
        """``nn.Module.to``; an LLM that ``from_pretrained`` placed (``llm.load_in_8bit``, ``load_in_4bit`` or
        ``device_map``) stays where it is and in its dtype (bitsandbytes models refuse ``.to``; a dispatched one
        would lose its map)."""
        if not self.cfg.llm.placed:
            return super().to(*args, **kwargs)
        attr = self.adapter.model_attr
        llm = getattr(self, attr)
        setattr(self, attr, None)  # nn.Module allows None for a registered child: ``to`` skips it
        try:
            super().to(*args, **kwargs)
        finally:
            setattr(self, attr, llm)
        return self

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def default_config_path(cls, model_type: str) -> str:
        if model_type not in cls.PRETRAINED_MODEL_CONFIG_DICT:
            raise ValueError(
                f"Unknown model_type {model_type!r} for {cls.__name__}; "
                f"choose one of {sorted(cls.PRETRAINED_MODEL_CONFIG_DICT)}"
            )
        return package_path(cls.PRETRAINED_MODEL_CONFIG_DICT[model_type])

    @classmethod
    def from_config(cls, cfg: Any) -> "VisLingInstruct":
        """Build from a LAVIS model config, then load the weights it names (``checkpoint.load_weights``)."""
        from .checkpoint import load_weights

        vcfg = VisLingInstructCfg.from_omegaconf(cfg)
        model = cls(vcfg)
        model.model_type = str((cfg or {}).get("model_type") or "")
        load_weights(model, vcfg)
        return model


@registry.register_model("vislinginstruct_vicuna")
class VisLingInstructVicuna(VisLingInstruct):
    """VisLingInstruct with Vicuna (LLaMA) as the LLM."""

    PRETRAINED_MODEL_CONFIG_DICT = {
        "vicuna7b": os.path.join("configs", "models", "vislinginstruct_vicuna7b.yaml"),
        "vicuna13b": os.path.join("configs", "models", "vislinginstruct_vicuna13b.yaml"),
        "tiny": os.path.join("configs", "models", "vislinginstruct_vicuna_tiny.yaml"),
        "demo": os.path.join("configs", "models", "vislinginstruct_vicuna_demo.yaml"),
    }


@registry.register_model("vislinginstruct_t5")
class VisLingInstructT5(VisLingInstruct):
    """VisLingInstruct with FlanT5 as the LLM."""

    PRETRAINED_MODEL_CONFIG_DICT = {
        "flant5xl": os.path.join("configs", "models", "vislinginstruct_flant5xl.yaml"),
        "flant5xxl": os.path.join("configs", "models", "vislinginstruct_flant5xxl.yaml"),
        "tiny": os.path.join("configs", "models", "vislinginstruct_t5_tiny.yaml"),
    }
