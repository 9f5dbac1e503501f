"""AIO for HF transformers' image-text-to-text models: the :class:`~lavis_vislinginstruct.aio.protocol.AIOBackend`
protocol over ``AutoModelForImageTextToText`` + ``AutoProcessor`` (VisLingInstruct, NAACL 2024, section 3.2, on
LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, InstructBLIP and their kin)::

    from transformers import AutoModelForImageTextToText, AutoProcessor
    from lavis_vislinginstruct.inference.hf_pipeline import VisionLanguagePipeline

    model = AutoModelForImageTextToText.from_pretrained("llava-hf/llava-1.5-7b-hf")
    processor = AutoProcessor.from_pretrained("llava-hf/llava-1.5-7b-hf")
    pipeline = VisionLanguagePipeline(model, processor, mode="full")
    answers, traces = pipeline.generate([image], ["What is unusual about this image?"], return_traces=True)

:class:`HFVisionLanguageBackend` is the one entry for every family. It writes each stage's text as the family's
prompt, computes the visual prefix of each (image, text) pair and asks the family's model for the answer or the
scores; a **family** (chosen once, by ``model.config.model_type``, in :func:`family_of`) is the object that knows how
its models read an image and a text:

* **Chat-template models** (:class:`ChatTemplateFamily`: LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, ...). Every text goes
  through the model's own chat template (the processor's; ``chat_template=`` overrides it) as one user turn, and the
  model answers in the assistant turn. Rewrite (Appendix B): the rewrite template alone, no image. IAS (eq. 3,
  Appendix C): the image and Appendix C's prompt in the user turn; the score is the mean NLL of the candidate's tokens
  followed by the tokenizer's end-of-sequence token (for chat models the token that ends an assistant turn: ``</s>``
  for LLaVA-1.5's Vicuna, ``<|im_end|>`` for Qwen2-VL), as the assistant's answer. Comparison and the answer: the
  image and the comparison prompt (the instruction) in the user turn.
  These models have no instruction-aware Q-Former, so the image tokens do not read the candidate instruction: the
  visual prefix of an (image, text) pair is the image alone, and the instruction reaches the model only as text. The
  image features are the call's images (RGB); the processor turns them into pixel values and the vision tower
  encodes them inside each stage's forward (the processor expands the image tokens of each prompt, so sharing encoded
  features across stages would need per-family code). Multiple-choice scoring shares the prefix: one prefill of
  (image, prompt) per document, then every choice is scored against its key-value cache.
  ``prompt_lookup_num_tokens`` is not used (greedy outputs are the same without it).
* **InstructBLIP** (:class:`~.hf_backend.HFInstructBlipBackend`, which is also usable alone on pixel values). No
  chat template: the prompt is the instruction itself. The Q-Former reads the instruction, so the visual prefix
  depends on the text, as in VisLingInstruct: the image features are the vision model's output (once per call),
  each (image, text) pair costs a Q-Former pass, and the LLM reads ``[query outputs][prompt]`` in LAVIS's token
  layout, through the same LLM adapters as our VisLingInstruct model. Chat turns are written as the VisLingInstruct
  chat writes them.

The answers read ``trace.used``: :meth:`HFVisionLanguageBackend.answer` takes the visual prefix's texts
(``instructions``) apart from the LLM's prompts, so a chat's conversation is the LLM's text while the Q-Former reads
the current instruction (chat-template families ignore the prefix's texts).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from .generation import Decoding
from .hf_backend import HFInstructBlipBackend

#: A chat-template family's image features: the batch's images, RGB.
Images = List[Image.Image]
#: model_type of HF image-text-to-text models that AIO does not run on, and why.
UNSUPPORTED = {"blip-2": "its Q-Former does not read the instruction and it has no chat template (InstructBLIP's "
                         "Q-Former reads it: use an InstructBLIP folder)"}


def family_of(model, processor, chat_template: Optional[str] = None):
    """The family object of ``model`` (module docstring), chosen by ``model.config.model_type``.

    Raises:
        ValueError: For a model type AIO does not run on, or ``chat_template`` given to InstructBLIP.
    """
    kind = getattr(model.config, "model_type", "")
    if kind in UNSUPPORTED:
        raise ValueError(f"{kind}: not supported, {UNSUPPORTED[kind]}")
    if kind == "instructblip":
        if chat_template:
            raise ValueError("instructblip has no chat template (its prompt is the instruction itself): "
                             "chat_template= does not apply")
        return HFInstructBlipBackend.from_processor(model, processor)
    return ChatTemplateFamily(model, processor, chat_template)


class HFVisionLanguageBackend:
    """The AIO protocol (and the answers) on an HF image-text-to-text model of any family (module docstring).

    Args:
        model: An ``AutoModelForImageTextToText`` model (any device and dtype; eval mode).
        processor: Its ``AutoProcessor`` (image processor, tokenizer(s) and, for chat models, the chat template).
        chat_template: A chat template to use instead of the processor's (chat-template families).
    """

    def __init__(self, model, processor, chat_template: Optional[str] = None):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.family = family_of(model, processor, chat_template)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def chat_prompt(self, text: str, image: bool, history: Sequence[Tuple[str, str]] = ()) -> str:
        """The family's LLM text of ``text`` as the user's turn (after the image when ``image``), after ``history``'s
        earlier (question, answer) turns, ending where the answer starts."""
        return self.family.prompt(text, image, history)

    def _prompts(self, texts: Sequence[str], image: bool) -> List[str]:
        return [self.family.prompt(t, image) for t in texts]

    # ------------------------------------------------------------------------------------------- protocol

    def encode_images(self, images: Sequence[Image.Image]) -> Any:
        """The family's features of the batch's images (PIL, read as RGB), computed once per call."""
        bad = [i for i, im in enumerate(images) if not isinstance(im, Image.Image)]
        if bad:
            raise ValueError(f"images must be PIL images; item {bad[0]} is {type(images[bad[0]]).__name__}")
        return self.family.encode([im.convert("RGB") for im in images])

    def visual_prefix(self, features: Any, rows: Sequence[int], texts: Sequence[str]) -> Any:
        """The visual prefix of image ``features[rows[i]]`` read with ``texts[i]`` (by the family's rule)."""
        return self.family.visual_prefix(features, rows, texts)

    def prefix_rows(self, prefix: Any, rows: Sequence[int]) -> Any:
        return self.family.prefix_rows(prefix, rows)

    @torch.no_grad()
    def generate(self, prefix: Any, prompts: Sequence[str], decoding: Dict[str, Any]) -> List[str]:
        """Greedy/beam decoding of AIO's stages (``prefix`` None: the rewrite, no image)."""
        if not prompts:
            return []
        return self.family.decode(prefix, self._prompts(prompts, prefix is not None), Decoding.from_aio(decoding),
                                  prompt_lookup=decoding.get("prompt_lookup_num_tokens") or 0)

    @torch.no_grad()
    def continuation_nll(self, prefix: Any, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean NLL of ``continuation`` + EOS as the answer to (prefix, prompt): the IAS."""
        return [float(x) for x in self.family.continuation_nll(prefix, self._prompts(prompts, True), continuations)]

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        return self.family.llm_token_counts(texts)

    def generation_room(self, prompts: Sequence[str], visual: bool) -> Optional[int]:
        """New tokens the LLM's context leaves after the longest prompt (and, with ``visual``, the image's tokens),
        or None when the config names no context."""
        return self.family.generation_room(self._prompts(prompts, False), visual) if prompts else None

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        return self.family.qformer_token_budget(texts)

    def prompt_limit(self) -> Optional[int]:
        """Most LLM tokens of a prompt (longer ones lose their start), or None when the family cuts none."""
        return self.family.prompt_limit()

    def cache_token(self) -> int:
        """Changes when the weights that rewrite change."""
        return self.family.cache_token()

    # ----------------------------------------------------------------------------------------- answering

    @torch.no_grad()
    def answer(self, features: Any, prompts: Sequence[str], decoding: Decoding, templated: bool = False,
               streamer: Any = None, instructions: Optional[Sequence[str]] = None) -> List[str]:
        """The model's answers to ``prompts`` after image ``i`` of ``features`` (None: text only).

        Args:
            features: :meth:`encode_images` of the batch, or None.
            prompts: The instructions, or with ``templated`` whole LLM texts (:meth:`chat_prompt`, e.g. a chat).
            decoding: The decoding.
            streamer: A streamer (:meth:`make_streamer`) that receives the tokens as they come.
            instructions: The texts the visual prefix reads (default: ``prompts``; InstructBLIP's Q-Former reads
                them, chat-template families ignore them).
        """
        if not prompts:
            return []
        texts = list(prompts) if templated else self._prompts(prompts, features is not None)
        prefix = None if features is None else self.visual_prefix(features, range(len(texts)),
                                                                  list(instructions or prompts))
        return self.family.decode(prefix, texts, decoding, streamer=streamer)

    @torch.no_grad()
    def choice_nll(self, features: Any, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                   score: str = "sum") -> Tuple[List[List[float]], List[List[bool]]]:
        """Per document, the NLL (``sum`` or ``mean`` over tokens) of each choice as the answer to (image, prompt),
        and whether it is the greedy continuation; one prefill per document, the choices read its key-value cache."""
        if score not in ("sum", "mean"):
            raise ValueError(f"score must be one of ['mean', 'sum'], got {score!r}")
        for prompt, options in zip(prompts, choices):
            empty = [c for c in options if not self.tokenizer(c, add_special_tokens=False).input_ids]
            if empty:
                raise ValueError(f"choice {empty[0]!r} of prompt {prompt[:60]!r} has no tokens")
        prefix = self.visual_prefix(features, range(len(prompts)), list(prompts))
        return self.family.choice_nll(prefix, self._prompts(prompts, True), choices, score)

    def make_streamer(self, timeout: Optional[float] = None):
        """A ``TextIteratorStreamer`` that decodes the new tokens as :meth:`answer` does."""
        return self.family.make_streamer(timeout)


class ChatTemplateFamily:
    """Models that read images as tokens of a chat-templated text (module docstring).

    Args:
        model: An ``AutoModelForImageTextToText`` model.
        processor: Its ``AutoProcessor``.
        chat_template: A chat template to use instead of the processor's.
    """

    def __init__(self, model, processor, chat_template: Optional[str] = None):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.chat_template = chat_template or getattr(processor, "chat_template", None)
        if not self.chat_template:
            raise ValueError(
                f"the processor of {getattr(model.config, '_name_or_path', '') or type(model).__name__} has no chat "
                "template: pass chat_template= (a Jinja template taking [image, text] user content)"
            )
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the processor's tokenizer has no eos_token: the IAS scores the instruction + EOS")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt(self, text: str, image: bool, history: Sequence[Tuple[str, str]] = ()) -> str:
        """``text`` as the user turn (after the image when ``image``), ending where the assistant's answer starts;
        ``history``: earlier (question, answer) turns before it (the image then opens the first of them)."""
        messages: List[Dict[str, Any]] = []
        for question, answer in history:
            content = ([{"type": "image"}] if image and not messages else []) + [{"type": "text", "text": question}]
            messages += [{"role": "user", "content": content},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        content = ([{"type": "image"}] if image and not messages else []) + [{"type": "text", "text": text}]
        messages.append({"role": "user", "content": content})
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                  chat_template=self.chat_template)

    def inputs(self, images: Optional[Images], prompts: Sequence[str], padding_side: str = "left") -> Dict[str, Any]:
        """The processor's model inputs of the chat-templated ``prompts`` with ``images[i]`` in prompt i, or no image
        (``images`` None), padded on ``padding_side``."""
        kwargs = {"images": list(images)} if images is not None else {}
        batch = self.processor(text=list(prompts), padding=True, padding_side=padding_side, return_tensors="pt",
                               **kwargs)
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.device, dtype) if torch.is_floating_point(v) else v.to(self.device))
                for k, v in batch.items()}

    def encode(self, images: Images) -> Images:
        """The images themselves (the processor and the vision tower read them in each stage)."""
        return list(images)

    def visual_prefix(self, features: Images, rows: Sequence[int], texts: Sequence[str]) -> Images:
        """The images of ``rows``: the image tokens do not read ``texts`` (no instruction-aware Q-Former)."""
        return [features[int(r)] for r in rows]

    def prefix_rows(self, prefix: Images, rows: Sequence[int]) -> Images:
        return [prefix[int(r)] for r in rows]

    @torch.no_grad()
    def decode(self, images: Optional[Images], prompts: Sequence[str], decoding: Decoding, streamer: Any = None,
               prompt_lookup: int = 0) -> List[str]:
        """The model's ``generate`` on the chat-templated prompts (after ``images[i]``; None: text only), decoded
        after the prompt without special tokens (``prompt_lookup`` is not used)."""
        inputs = self.inputs(images, prompts)
        out = self.model.generate(**inputs, **_generate_kwargs(decoding), pad_token_id=self._pad(), streamer=streamer)
        return self.tokenizer.batch_decode(out[:, inputs["input_ids"].size(1):], skip_special_tokens=True)

    @torch.no_grad()
    def continuation_nll(self, images: Images, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean NLL of ``continuation`` + EOS as the assistant's answer to the chat-templated (image, prompt)."""
        eos = self.tokenizer.eos_token_id
        targets = [self._ids(c) + [eos] for c in continuations]
        return self._continuation_nll(images, prompts, targets, "mean").tolist()

    @torch.no_grad()
    def choice_nll(self, images: Images, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                   score: str = "sum") -> Tuple[List[List[float]], List[List[bool]]]:
        """Per document, each choice's NLL as the assistant's answer to the chat-templated (image, prompt) and whether
        it is greedy; one prefill per document, the choices read its key-value cache."""
        scores, greedy = [], []
        for image, prompt, options in zip(images, prompts, choices):
            ids = [self._ids(c) for c in options]
            prefix = self.inputs([image], [prompt])
            out = self.model(**prefix, use_cache=True)
            n, width = len(ids), max(len(i) for i in ids)
            cache = out.past_key_values
            cache.batch_repeat_interleave(n)
            start = prefix["input_ids"].size(1)
            tokens = torch.tensor([i + [self._pad()] * (width - len(i)) for i in ids], device=self.device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=self.device)
            # the model's own step after a prefill (positions, Qwen2-VL's rope deltas), for all choices at once
            step = self.model.prepare_inputs_for_generation(
                torch.cat([prefix["input_ids"].expand(n, -1), tokens], 1), past_key_values=cache,
                attention_mask=torch.cat([prefix["attention_mask"].expand(n, -1), mask], 1),
                cache_position=torch.arange(start, start + width, device=self.device), use_cache=True,
            )
            step = {k: v for k, v in step.items() if v is not None}  # logits_to_keep=None would index by None
            logits = self.model(**step).logits
            # the first choice token is predicted by the prompt's last position, the others by the choice's own
            logits = torch.cat([out.logits[:, -1:].expand(n, -1, -1), logits[:, :-1]], 1).float()
            nll, hit = _token_nll(logits, tokens, mask.bool(), score)
            scores.append(nll.tolist())
            greedy.append(hit.tolist())
        return scores, greedy

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        """Tokens of each text + 1 (the optimizer's counts include one special token, as a prompt's BOS)."""
        return [len(self._ids(t)) + 1 for t in texts]

    def generation_room(self, prompts: Sequence[str], visual: bool) -> Optional[int]:
        """New tokens the LLM's context leaves after the longest chat-templated prompt (and an image's tokens,
        counted on a blank image of the image processor's size), or None when the config names no context."""
        text_cfg = getattr(self.model.config, "text_config", self.model.config)
        context = getattr(text_cfg, "max_position_embeddings", None)
        if not context:
            return None
        longest = max(len(self.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts)
        return context - longest - (self._image_tokens() if visual else 0)

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        """No Q-Former: nothing is cut (0 tokens, budget 0)."""
        return [(0, 0) for _ in texts]

    def prompt_limit(self) -> Optional[int]:
        """None: the processor cuts no prompt."""
        return None

    def cache_token(self) -> int:
        """Changes when any weight is replaced or modified in place (rewrites read the language model)."""
        return hash((id(self.model),) + tuple((p.data_ptr(), p._version) for p in self.model.parameters()))

    def make_streamer(self, timeout: Optional[float] = None):
        """A ``TextIteratorStreamer`` that decodes the new tokens as :meth:`decode` does."""
        from transformers import TextIteratorStreamer

        return TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)

    # -------------------------------------------------------------------------------------------- helpers

    def _ids(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _pad(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def _image_tokens(self) -> int:
        """Tokens one image takes in a prompt (counted once, on a blank image of the processor's input size)."""
        if not hasattr(self, "_n_image_tokens"):
            size = getattr(self.processor.image_processor, "crop_size", None) or {}
            side = int(size.get("height", 0) or 0) or 336
            with_image = self.inputs([Image.new("RGB", (side, side))], [self.prompt("", True)])["input_ids"].size(1)
            self._n_image_tokens = with_image - self.inputs(None, [self.prompt("", False)])["input_ids"].size(1)
        return self._n_image_tokens

    def _continuation_nll(self, images: Images, prompts: Sequence[str], targets: Sequence[Sequence[int]],
                          score: str) -> torch.Tensor:
        """NLL of token ids ``targets[i]`` right after the chat-templated (image, prompt) i, one forward for the
        batch (right-padded, so every row keeps its positions)."""
        inputs = self.inputs(images, prompts, padding_side="right")
        ids, attn = inputs.pop("input_ids"), inputs.pop("attention_mask")
        lengths = attn.sum(1).tolist()
        rows = [ids[i, :n].tolist() + list(t) for i, (n, t) in enumerate(zip(lengths, targets))]
        width = max(len(r) for r in rows)
        tokens = torch.tensor([r + [self._pad()] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        scored = torch.zeros_like(mask, dtype=torch.bool)
        for i, (n, t) in enumerate(zip(lengths, targets)):
            scored[i, n:n + len(t)] = True
        logits = self.model(input_ids=tokens, attention_mask=mask, **inputs).logits.float()
        return _token_nll(logits[:, :-1], tokens[:, 1:], scored[:, 1:], score)[0]


def _generate_kwargs(decoding: Decoding) -> Dict[str, Any]:
    """``generate``'s arguments of ``decoding`` without the ones its mode ignores (sampling settings when greedy,
    the length penalty without beams), which transformers would warn about at every call."""
    kwargs = decoding.hf_kwargs()
    if not decoding.do_sample:
        kwargs.pop("temperature")
        kwargs.pop("top_p")
    if decoding.num_beams == 1:
        kwargs.pop("length_penalty")
    return kwargs


def _token_nll(logits: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor, score: str):
    """(sum or mean NLL over the ``scored`` positions, whether each scored token is the argmax) per row."""
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * scored
    total = nll.sum(1)
    greedy = ((logits.argmax(-1) == targets) | ~scored).all(1)
    return (total / scored.sum(1).clamp(min=1) if score == "mean" else total), greedy
