"""VisLingInstruct (Zhu et al., NAACL 2024): InstructBLIP with Enhanced Multi-modal Alignment (EMA).

One core model for both LLM families; two thin registered names fix the family:
``vislinginstruct_vicuna`` (types vicuna7b, vicuna13b, tiny) and ``vislinginstruct_t5`` (flant5xl, flant5xxl, tiny).

Data flow of one sample (shapes for the real models):

1. ``encode_image``: EVA ViT-g/14 + ``ln_vision``: image (3, 224, 224) -> (257, 1408). Runs once per image per call.
2. ``visual_prefix``: the instruction-aware Q-Former reads the 32 query tokens and the instruction's tokens and
   cross-attends to the image: query outputs (32, 768) and instruction states (N, 768). With CMAA on, the query
   outputs attend over the instruction states (eq. 1) and the result U_mm (32, 768) is appended: 64 tokens, then
   the trainable projection maps them into the LLM's embedding space.
3. The LLM adapter computes the loss, generates, or ranks candidates (``llm_adapters.py``).

With ``cmaa.enabled: false`` the model computes exactly what LAVIS's InstructBLIP computes for the same weights.
Parameter names equal LAVIS's (``visual_encoder``, ``ln_vision``, ``query_tokens``, ``Qformer.bert``,
``llm_proj``/``t5_proj``, ``llm_model``/``t5_model``), so the published InstructBLIP checkpoints load unchanged.

Checkpoints (the plugin's side of LAVIS's runner contract): ``state_dict()`` is what a checkpoint of this model
holds, the trainable parameters only (the projection; everything else comes from the files the config names), and
``load_state_dict(strict=True)`` accepts such a checkpoint while still refusing unexpected keys and missing
trainable ones. So LAVIS 1.0.2's stock ``RunnerBase._save_checkpoint``/``_load_checkpoint`` write a few MB for a 7B
model and resume from them. ``full_state_dict()`` is every tensor (PyTorch's ``state_dict``). The model also
records which file each parameter came from (``weight_sources``), so entry points can refuse to evaluate a model
whose pretrained parts would stay random (:meth:`VisLingInstruct.check_weights_loaded`).
"""
import contextlib
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from lavis.common.registry import registry
from lavis.models.base_model import BaseModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from ..aio.optimizer import InstructionOptimizer
from ..aio.trace import AIOTrace
from ..paths import package_path
from . import tokenizers
from . import checkpoint as ckpt
from .aio_backend import VisLingInstructBackend
from .config import VisLingInstructCfg, choice
from .cross_modal_attention import CrossModalAlignmentAttention
from .inputs import candidate_lists, instruction_list
from .llm_adapters import DecoderOnlyAdapter, EncoderDecoderAdapter
from .qformer import build_qformer
from .vision import build_vision_tower, freeze

logger = logging.getLogger(__name__)

#: Per-call variants of one model (:meth:`VisLingInstruct.variant`).
MODEL_VARIANTS = ("vanilla", "ema")


class VisLingInstruct(BaseModel):
    """InstructBLIP architecture + Cross-Modal Alignment Attention; see the module docstring."""

    PRETRAINED_MODEL_CONFIG_DICT: Dict[str, str] = {}
    #: Model types whose weights are random on purpose (tests, plumbing checks); every other type must load all of
    #: its weights from files before it evaluates (:meth:`check_weights_loaded`).
    RANDOM_MODEL_TYPES: Tuple[str, ...] = ("tiny",)

    def __init__(self, cfg: VisLingInstructCfg):
        super().__init__()
        self.cfg = cfg
        self.model_type = ""  # set by from_config (LAVIS's model_type; the typed config does not keep it)
        self.weight_sources: Dict[str, str] = {}  # parameter name -> file it was loaded from (checkpoint.load_weights)
        family = choice(cfg.llm.family, {"decoder_only", "encoder_decoder"}, "llm.family")

        self.tokenizer = tokenizers.qformer_tokenizer(cfg.qformer.tokenizer)
        self.visual_encoder, self.ln_vision = build_vision_tower(cfg.vision)
        self.Qformer, self.query_tokens = build_qformer(cfg.qformer, cfg.vision.width)
        self.cmaa = CrossModalAlignmentAttention(cfg.cmaa.scale) if cfg.cmaa.enabled else None

        tok_name = cfg.llm.tokenizer or cfg.llm.model
        if family == "decoder_only":
            self.adapter = DecoderOnlyAdapter(
                self, tokenizers.vicuna_tokenizer(tok_name), cfg.qformer.max_txt_len, cfg.llm.max_output_txt_len
            )
            self.llm_tokenizer = self.adapter.tokenizer
        else:
            self.adapter = EncoderDecoderAdapter(
                self, tokenizers.t5_tokenizers(tok_name), cfg.qformer.max_txt_len, cfg.llm.max_output_txt_len
            )
            self.t5_tokenizer, self.t5_output_tokenizer = self.adapter.tokenizer, self.adapter.output_tokenizer
        setattr(self, self.adapter.model_attr, build_llm(cfg, len(self.adapter.tokenizer), meta=bool(cfg.llm.model)))
        hidden = getattr(self, self.adapter.model_attr).config
        llm_width = hidden.hidden_size if family == "decoder_only" else hidden.d_model
        setattr(self, self.adapter.proj_attr, nn.Linear(cfg.qformer.hidden_size, llm_width))
        self.apply_freezing()
        self.weights_version = 0  # bumped when weights are loaded or trained: AIO's rewrite cache depends on it
        self.instruction_optimizer = InstructionOptimizer(cfg.aio, VisLingInstructBackend(self))
        self._truncation_reported = False

    # ----------------------------------------------------------------------------------------------- set-up

    @property
    def llm(self) -> nn.Module:
        return getattr(self, self.adapter.model_attr)

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

    def train(self, mode: bool = True) -> "VisLingInstruct":
        """``nn.Module.train``; entering training mode also invalidates AIO's memoized rewrites."""
        if mode:
            self.mark_weights_changed()
        return super().train(mode)

    def mark_weights_changed(self) -> None:
        """Record that the weights changed (loaded or trained), so AIO does not reuse rewrites of the old ones."""
        self.weights_version += 1

    def maybe_autocast(self, dtype: torch.dtype = torch.float16):
        """Autocast on GPU (fp16 for ViT and Vicuna, bf16 for T5), nothing on CPU, as LAVIS."""
        if self.device.type == "cpu":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # ------------------------------------------------------------------------------------------- encoders

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """ViT features after ``ln_vision``: (B, 3, H, W) -> (B, 1 + (H/p)*(W/p), width)."""
        if not torch.is_tensor(image) or image.dim() != 4:
            shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
            raise ValueError(f"samples['image'] must be a (B, 3, H, W) tensor, got {shape}")
        with self.maybe_autocast():
            return self.ln_vision(self.visual_encoder(image))

    def visual_prefix(
        self, image_embeds: torch.Tensor, instructions: Sequence[str]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """LLM input embeddings of the visual tokens for each (image, instruction) pair.

        Args:
            image_embeds: ``encode_image`` output, (B, N_img, W); row i pairs with ``instructions[i]``.
            instructions: the texts the Q-Former reads beside its queries.

        Returns:
            embeds (B, P, D_llm) with P = 32 (CMAA off) or 64 (on), and their all-ones mask (B, P).
        """
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
        if self.cmaa is not None:
            u_mm = self.cmaa(tokens, hidden[:, q:], text.attention_mask)  # (B, Q, D)
            tokens = torch.cat([tokens, u_mm], dim=1)  # (B, 2Q, D)
        # step 3: into the LLM's embedding space
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
    ) -> Union[List[str], Tuple[List[str], List[AIOTrace]]]:
        """One generated text per sample (``num_captions`` per sample when sampling several), batched.

        Args:
            samples: ``image`` (B, 3, H, W), ``text_input`` (the instructions; or LAVIS's ``prompt``) and, for AIO,
                optionally ``keep_spans`` (per sample, the task content an optimized instruction must keep).
            aio: ``off``, ``rewrite`` or ``full`` (default: ``model.aio.mode``); the answer uses ``trace.used``.
            return_traces: Also return one :class:`~lavis_vislinginstruct.aio.trace.AIOTrace` per sample.
            The rest: LAVIS's InstructBLIP decoding arguments.

        Returns:
            The texts, or ``(texts, traces)`` with ``return_traces``.
        """
        image_embeds = self.encode_image(samples["image"])
        instructions, traces = self.instructions_for(samples, image_embeds, aio)
        prefix, prefix_mask = self.visual_prefix(image_embeds, instructions)
        texts = self.adapter.generate(
            prefix,
            prefix_mask,
            instructions,
            do_sample=use_nucleus_sampling,
            top_p=top_p,
            temperature=temperature,
            num_beams=num_beams,
            max_length=max_length,
            min_length=min_length,
            repetition_penalty=repetition_penalty,
            length_penalty=length_penalty,
            num_return_sequences=num_captions,
        )
        return (texts, traces) if return_traces else texts

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
    ) -> Union[List[str], Tuple[List[str], List[AIOTrace]]]:
        """Short answers for VQA (LAVIS signature). ``prompt`` with ``{}`` is filled with each ``text_input``.

        Only ``inference_method="generate"`` exists, as in InstructBLIP; ``answer_list`` is not used.
        ``return_traces`` as :meth:`generate`.
        """
        if inference_method != "generate":
            raise ValueError(f"inference_method must be 'generate', got {inference_method!r}")
        texts = self._texts(samples, "text_input")
        if prompt:
            samples = {**samples, "text_input": [prompt.format(t) if "{}" in prompt else prompt for t in texts]}
        if length_penalty is None:  # InstructBLIP's defaults per family
            length_penalty = 0 if self.cfg.llm.family == "decoder_only" else -1
        return self.generate(
            samples, num_beams=num_beams, max_length=max_len, min_length=min_len, length_penalty=length_penalty,
            aio=aio, return_traces=return_traces,
        )

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
        choice(score, {"mean", "sum"}, "score")
        cands = samples.get("candidates") if candidates is None else candidates
        if not torch.is_tensor(samples.get("image")):
            raise ValueError("samples['image'] must be a (B, 3, H, W) tensor")
        n = samples["image"].size(0)
        cands = candidate_lists(cands, n)
        image_embeds = self.encode_image(samples["image"])
        instructions, traces = self.instructions_for(samples, image_embeds, aio)
        prefix, prefix_mask = self.visual_prefix(image_embeds, instructions)
        ranked = self.adapter.rank(
            prefix, prefix_mask, instructions, cands, reduction=score, chunk_size=chunk_size,
            return_greedy=return_greedy,
        )
        scores, greedy = ranked if return_greedy else (ranked, None)
        rankings = [sorted(range(len(s)), key=lambda j, s=s: (s[j], j)) for s in scores]
        out: Dict[str, List[Any]] = {"rankings": rankings, "scores": scores}
        if return_traces:
            out["traces"] = traces
        if return_greedy:
            out["greedy"] = greedy
        return out

    # ------------------------------------------------------------------------------------------- helpers

    def instructions_for(
        self, samples: Dict[str, Any], image_embeds: torch.Tensor, aio: Optional[str], select: Optional[str] = None
    ) -> Tuple[List[str], List[AIOTrace]]:
        """The instruction each sample is answered with (the initial one, or AIO's choice) and the AIO traces."""
        key = "text_input" if "text_input" in samples else "prompt"
        instructions = self._instructions(samples, key, image_embeds, default=self.cfg.prompt)
        traces = self.instruction_optimizer.optimize(
            image_embeds, instructions, samples.get("keep_spans"), mode=aio or self.cfg.aio.mode, select=select
        )
        self._report_truncation(traces)
        return [t.used for t in traces], traces

    @torch.no_grad()
    def optimize_instructions(
        self, samples: Dict[str, Any], mode: str = "full", select: Optional[str] = None
    ) -> List[AIOTrace]:
        """The AIO traces (initial, rewritten, both IAS, comparison prompt, optimized, used, reason) per sample."""
        image_embeds = self.encode_image(samples["image"])
        instructions = self._instructions(samples, "text_input", image_embeds)
        return self.instruction_optimizer.optimize(
            image_embeds, instructions, samples.get("keep_spans"), mode=mode, select=select
        )

    @torch.no_grad()
    def instruction_alignment_score(self, samples: Dict[str, Any], instructions: Sequence[str]) -> torch.Tensor:
        """Instruction Alignment Score (eq. 3) of ``instructions[i]`` for image ``i``: per-sample mean NLL; (B,).

        As the official ``calculate_ias``: the Q-Former reads the instruction being scored, and the scored
        continuation after the Appendix C prompt is the instruction followed by the end-of-sequence token.
        """
        image_embeds = self.encode_image(samples["image"])
        instructions = self._instructions({"instructions": instructions}, "instructions", image_embeds)
        rows = list(range(len(instructions)))
        return torch.tensor(self.instruction_optimizer.alignment_scores(image_embeds, rows, instructions))

    def _report_truncation(self, traces: List[AIOTrace]) -> None:
        """Warn once per model when instructions are longer than the Q-Former reads (later cases: debug log)."""
        cut = [t for t in traces if any("Q-Former tokens" in n for n in t.notes)]
        if not cut:
            return
        level = logging.DEBUG if self._truncation_reported else logging.WARNING
        logger.log(
            level, "%d of %d instructions are longer than qformer.max_txt_len=%d tokens and are cut (first: %s). "
            "Reported once; AIO traces note each case.", len(cut), len(traces), self.cfg.qformer.max_txt_len,
            cut[0].notes[0],
        )
        self._truncation_reported = True

    def _instructions(
        self, samples: Dict[str, Any], key: str, image_embeds: torch.Tensor, default: str = ""
    ) -> List[str]:
        """Non-empty ``samples[key]``, one per image (a single string is used for every image)."""
        n = image_embeds.size(0)
        instructions = self._texts({**samples, "image": image_embeds}, key, default=default)
        if len(instructions) != n:
            raise ValueError(f"{n} images but {len(instructions)} instructions")
        return instructions

    def _texts(self, samples: Dict[str, Any], key: str, allow_empty: bool = False, default: str = "") -> List[str]:
        n = samples["image"].size(0) if torch.is_tensor(samples.get("image")) else None
        return instruction_list(samples, key, n, default=default, allow_empty=allow_empty)

    # --------------------------------------------------------------------- variants and chat (issue 12)
    # The web demo answers one instruction as Vanilla (InstructBLIP: its own projection, CMAA off) and as EMA (the
    # fine-tuned projection, CMAA on) from one copy of the weights: only the projection, a few MB, is kept twice.

    def keep_base_projection(self) -> None:
        """Keep the current projection as InstructBLIP's, for ``variant("vanilla")``; the loader calls this before a
        fine-tuned projection is loaded over it. Non-persistent buffers: they follow ``.to()`` and stay out of
        ``state_dict()``, so checkpoints keep their keys."""
        self.register_buffer("base_proj_weight", self.proj.weight.detach().clone(), persistent=False)
        self.register_buffer("base_proj_bias", self.proj.bias.detach().clone(), persistent=False)

    @property
    def has_base_projection(self) -> bool:
        """True when a fine-tuned projection was loaded over an InstructBLIP one (the two variants differ)."""
        return getattr(self, "base_proj_weight", None) is not None

    @contextlib.contextmanager
    def variant(self, name: str):
        """Inside the block the model computes as one of :data:`MODEL_VARIANTS`, then returns to its state.

        ``vanilla``: CMAA off and InstructBLIP's projection (the one kept by :meth:`keep_base_projection`, else the
        loaded one). ``ema``: CMAA on (``cmaa.scale`` of the config) and the loaded projection. Not thread-safe:
        callers that share the model serialize their calls (``chat.engine.ChatEngine`` holds a lock).
        """
        choice(name, MODEL_VARIANTS, "variant")
        saved_cmaa, proj = self.cmaa, self.proj
        saved = (proj.weight.data, proj.bias.data)
        try:
            if name == "vanilla":
                self.cmaa = None
                if self.has_base_projection:
                    proj.weight.data, proj.bias.data = self.base_proj_weight, self.base_proj_bias
            elif saved_cmaa is None:
                self.cmaa = CrossModalAlignmentAttention(self.cfg.cmaa.scale)
            yield self
        finally:
            self.cmaa = saved_cmaa
            proj.weight.data, proj.bias.data = saved

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

    @torch.no_grad()
    def generate_turn(
        self, samples: Dict[str, Any], prompts: Sequence[str], streamer: Any = None, **decoding
    ) -> List[str]:
        """:meth:`generate` with the LLM's text apart from the Q-Former's, for dialogs.

        Args:
            samples: ``image`` and ``text_input``: what the Q-Former reads (the current question).
            prompts: what the LLM reads after the visual tokens, one per sample (earlier turns, then the question).
            streamer: a HF streamer (:meth:`make_streamer`) fed with the tokens as they are generated.
            **decoding: HF ``generate`` arguments (``do_sample``, ``num_beams``, ``top_p``, ...); ``max_length`` and
                ``min_length`` count new tokens, as in :meth:`generate`.
        """
        image_embeds = self.encode_image(samples["image"])
        instructions = self._instructions(samples, "text_input", image_embeds)
        if len(prompts) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(prompts)} LLM prompts")
        prefix, prefix_mask = self.visual_prefix(image_embeds, instructions)
        if streamer is not None:
            decoding["streamer"] = streamer
        return self.adapter.generate(prefix, prefix_mask, list(prompts), **decoding)

    def make_streamer(self, timeout: Optional[float] = None):
        """A ``TextIteratorStreamer`` that decodes tokens as this model's ``generate`` does (one sample, no beams)."""
        return self.adapter.make_streamer(timeout)

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

    # ---------------------------------------------------------------------------------------- checkpoints

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """What a checkpoint of this model holds: the trainable parameters only (module docstring).

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
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        self.mark_weights_changed()
        return result

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
