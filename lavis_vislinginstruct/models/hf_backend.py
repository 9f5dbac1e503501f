"""AIO for HF transformers' InstructBLIP: the :class:`~lavis_vislinginstruct.aio.protocol.AIOBackend` protocol on
``InstructBlipForConditionalGeneration`` (VisLingInstruct, NAACL 2024, section 3.2, on any InstructBLIP).

Many users load ``Salesforce/instructblip-*`` with transformers rather than through LAVIS. With this backend the
same :class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer` runs on such a model directly::

    from transformers import InstructBlipForConditionalGeneration, InstructBlipProcessor
    from lavis_vislinginstruct.aio import AIOCfg, InstructionOptimizer
    from lavis_vislinginstruct.models.hf_backend import HFInstructBlipBackend

    model = InstructBlipForConditionalGeneration.from_pretrained("Salesforce/instructblip-vicuna-7b")
    processor = InstructBlipProcessor.from_pretrained("Salesforce/instructblip-vicuna-7b")
    backend = HFInstructBlipBackend(model, processor.tokenizer, processor.qformer_tokenizer)
    optimizer = InstructionOptimizer(AIOCfg(), backend)
    pixel_values = processor.image_processor(images, return_tensors="pt").pixel_values
    traces = optimizer.optimize(backend.encode_images(pixel_values), ["What is unusual about this image?"])
    answers = backend.answer(pixel_values, [t.used for t in traces], max_new_tokens=100)

The model's public parts are composed as InstructBLIP composes them (``vision_model`` once per image, then
``qformer`` over ``query_tokens`` and the instruction, ``language_projection``) and the LLM is driven through the
same token layout as VisLingInstruct's own LLM adapters (LAVIS's: ``[visual][prompt]`` with the prompt tokenized by
the LLM tokenizer as given), so an HF model and a VisLingInstruct model loaded with its remapped weights (CMAA off)
produce the same AIO traces and answers (tests/test_hf_backend.py). ``tokenizer`` must be configured as InstructBLIP
expects: for Vicuna, LAVIS's settings (``models/tokenizers.py::vicuna_tokenizer``); the Q-Former's truncates on the
left at ``max_txt_len``.

One difference between the two implementations is the HF model's own, not the backend's: LAVIS builds FlanT5 with
exact GELU in its feed-forward layers (``dense_act_fn = "gelu"``), while HF's ``Salesforce/instructblip-flan-t5-*``
configs keep T5's ``gelu_new`` (tanh approximation). The equality test therefore gives both models the same
activation; with the published weights, expect small numeric differences for FlanT5 (none for Vicuna).

The class is also the InstructBLIP family of the generic HF path (:mod:`.hf_vlm`): ``HFVisionLanguageBackend(model,
processor)`` on an InstructBLIP folder (``AutoModelForImageTextToText`` + ``AutoProcessor`` load it) builds one with
:meth:`HFInstructBlipBackend.from_processor` and hands it the jobs whose answer depends on the family: the prompt
(:meth:`~HFInstructBlipBackend.prompt`: no chat template, the instruction itself after the query outputs, earlier
chat turns before it as the VisLingInstruct chat writes them), image encoding from PIL images
(:meth:`~HFInstructBlipBackend.encode`), the visual prefix (the Q-Former reads the text), decoding
(:meth:`~HFInstructBlipBackend.decode`) and the scores, all through the LLM adapter's LAVIS token layout. HF's own
``generate`` on the processor's inputs (``num_query_tokens`` ``<image>`` placeholders filled with the query outputs,
then the tokenized prompt) reads the same sequence, so its greedy answers are this backend's
(tests/test_hf_vlm_instructblip.py).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from ..processors.templates import format_llava_instruction
from .generation import Decoding
from .llm_adapters import DecoderOnlyAdapter, EncoderDecoderAdapter, configured


class HFInstructBlipBackend:
    """The AIO protocol on ``transformers.InstructBlipForConditionalGeneration``.

    Args:
        model: The HF model (any device and dtype).
        tokenizer: Its LLM tokenizer (for FlanT5 it is also used for the decoder targets).
        qformer_tokenizer: Its Q-Former (BERT) tokenizer.
        max_txt_len: Q-Former and LLM prompt budget in tokens (InstructBLIP: 128).
        max_output_txt_len: Budget of scored continuations (InstructBLIP: 256).
        image_processor: The processor's image processor (``BlipImageProcessor``), needed by :meth:`encode` only.
    """

    def __init__(self, model, tokenizer, qformer_tokenizer, max_txt_len: int = 128, max_output_txt_len: int = 256,
                 image_processor=None):
        self.model = model
        self.image_processor = image_processor
        self.qformer_tokenizer = configured(qformer_tokenizer, truncation_side="left")  # the caller's is not changed
        self.max_txt_len = max_txt_len
        lm = model.language_model
        if model.config.use_decoder_only_language_model:
            self.adapter = DecoderOnlyAdapter(lm, tokenizer, max_txt_len, max_output_txt_len)
        else:  # the adapter keeps its own copies: inputs truncate on the left, targets on the right
            self.adapter = EncoderDecoderAdapter(lm, (tokenizer, tokenizer), max_txt_len, max_output_txt_len)

    @classmethod
    def from_processor(cls, model, processor, max_txt_len: int = 128,
                       max_output_txt_len: int = 256) -> "HFInstructBlipBackend":
        """The backend of a model and its ``InstructBlipProcessor`` (LLM and Q-Former tokenizers, image processor)."""
        missing = [name for name in ("tokenizer", "qformer_tokenizer", "image_processor")
                   if getattr(processor, name, None) is None]
        if missing:
            raise ValueError(f"{type(processor).__name__} has no {', '.join(missing)}: an InstructBLIP model needs "
                             "an InstructBlipProcessor (AutoProcessor of its folder)")
        return cls(model, processor.tokenizer, processor.qformer_tokenizer, max_txt_len, max_output_txt_len,
                   processor.image_processor)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------- protocol

    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``vision_model`` output (post-layernorm), (B, N_img, W); computed once per batch."""
        return self.model.vision_model(pixel_values=pixel_values.to(self.device), return_dict=True).last_hidden_state

    @torch.no_grad()
    def visual_prefix(self, features: torch.Tensor, rows: Sequence[int], texts: Sequence[str]) -> Tuple:
        """(projected query outputs, mask) for image ``features[rows[i]]`` with ``texts[i]`` read by the Q-Former."""
        image_embeds = features.index_select(0, torch.as_tensor(list(rows), dtype=torch.long, device=features.device))
        text = self.qformer_tokenizer(
            list(texts), padding="longest", truncation=True, max_length=self.max_txt_len, return_tensors="pt"
        ).to(image_embeds.device)
        queries = self.model.query_tokens.expand(image_embeds.size(0), -1, -1)  # (B, Q, D)
        query_mask = torch.ones(queries.shape[:-1], dtype=torch.long, device=image_embeds.device)
        hidden = self.model.qformer(
            input_ids=text.input_ids,
            attention_mask=torch.cat([query_mask, text.attention_mask], dim=1),
            query_embeds=queries,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device),
            return_dict=True,
        ).last_hidden_state[:, : queries.size(1)]
        embeds = self.model.language_projection(hidden)
        embeds = embeds.to(self.adapter.lm.get_input_embeddings().weight.dtype)
        return embeds, torch.ones(embeds.shape[:-1], dtype=torch.long, device=embeds.device)

    def prefix_rows(self, prefix: Tuple, rows: Sequence[int]) -> Tuple:
        """Rows ``rows`` of an (embeds, mask) prefix."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=prefix[0].device)
        return prefix[0].index_select(0, index), prefix[1].index_select(0, index)

    @torch.no_grad()
    def generate(self, prefix: Optional[Tuple], prompts: Sequence[str], decoding: Dict[str, Any]) -> List[str]:
        """Greedy/beam decoding after ``prefix`` (``None``: the LLM alone)."""
        return self.decode(prefix, prompts, Decoding.from_aio(decoding), prompt_lookup=decoding.get(
            "prompt_lookup_num_tokens") or 0)

    @torch.no_grad()
    def continuation_nll(self, prefix: Tuple, prompts: Sequence[str], continuations: Sequence[str]) -> List[float]:
        """Mean NLL of ``continuation`` + EOS after prefix + prompt (the IAS)."""
        embeds, mask = prefix
        return self.adapter.continuation_nll(embeds, mask, list(prompts), list(continuations), add_eos=True).tolist()

    def llm_token_counts(self, texts: Sequence[str]) -> List[int]:
        return self.adapter.token_counts(texts)

    def generation_room(self, prompts: Sequence[str], visual: bool) -> Optional[int]:
        """New tokens the LLM's context leaves after the longest prompt and, with ``visual``, the query outputs."""
        return self.adapter.generation_room(prompts, self.model.config.num_query_tokens if visual else 0)

    def qformer_token_budget(self, texts: Sequence[str]) -> List[Tuple[int, int]]:
        return [(len(ids), self.max_txt_len) for ids in self.qformer_tokenizer(list(texts)).input_ids]

    def prompt_limit(self) -> Optional[int]:
        """Most LLM tokens of a generation prompt (Vicuna: ``max_txt_len``, cut from the left; FlanT5: None)."""
        return self.adapter.prompt_limit()

    def cache_token(self) -> Any:
        """Changes when the LLM's weights change (rewrites read the LLM alone)."""
        return self.adapter.weights_token()

    # ----------------------------------------------------------------------------------------- answering

    @torch.no_grad()
    def answer(self, pixel_values: torch.Tensor, instructions: Sequence[str], decoding: Optional[Decoding] = None,
               **settings: Any) -> List[str]:
        """Answers to ``instructions`` (e.g. AIO's ``trace.used``) with InstructBLIP's prompt layout; ``decoding``
        (default: greedy, 30 new tokens at most, with ``settings`` such as ``max_new_tokens=100`` on top)."""
        features = self.encode_images(pixel_values)
        prefix = self.visual_prefix(features, range(features.size(0)), instructions)
        decoding = decoding or Decoding(**{"max_new_tokens": 30, "min_new_tokens": 0, "num_beams": 1,
                                           "repetition_penalty": 1.0, **settings})
        return self.decode(prefix, instructions, decoding)

    # ------------------------------------------------------------------- the family of the generic HF path

    def prompt(self, text: str, image: bool = True, history: Sequence[Tuple[str, str]] = ()) -> str:
        """What the LLM reads after the query outputs: ``text`` itself (InstructBLIP has no chat template), after
        ``history``'s (question, answer) turns as the VisLingInstruct chat writes them; ``image`` changes nothing
        (the query outputs are a prefix of the LLM's input, not a token of the text)."""
        return format_llava_instruction(history, text)

    @torch.no_grad()
    def encode(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """:meth:`encode_images` of PIL images, read by the processor's image processor."""
        if self.image_processor is None:
            raise ValueError("HFInstructBlipBackend has no image_processor: build it with from_processor(model, "
                             "processor) or pass pixel values to encode_images")
        pixels = self.image_processor(list(images), return_tensors="pt").pixel_values
        return self.encode_images(pixels.to(self.model.vision_model.embeddings.patch_embedding.weight.dtype))

    @torch.no_grad()
    def decode(self, prefix: Optional[Tuple], prompts: Sequence[str], decoding: Decoding, streamer: Any = None,
               prompt_lookup: int = 0) -> List[str]:
        """The LLM adapter's ``generate`` on ``[prefix][prompt]`` (``prefix`` None: the LLM alone), LAVIS's
        post-processing; ``streamer`` (:meth:`make_streamer`) receives the tokens."""
        embeds, mask = prefix if prefix is not None else (None, None)
        return self.adapter.generate(embeds, mask, list(prompts), decoding, streamer=streamer,
                                     prompt_lookup=prompt_lookup)

    @torch.no_grad()
    def choice_nll(self, prefix: Tuple, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                   score: str = "sum") -> Tuple[List[List[float]], List[List[bool]]]:
        """Per sample, each choice's NLL (``sum`` or ``mean``) after ``[prefix][prompt]`` and whether it is the greedy
        continuation: the adapter's ranking (one prefill per sample, the choices read its key-value cache)."""
        embeds, mask = prefix
        return self.adapter.rank(embeds, mask, list(prompts), [list(c) for c in choices], reduction=score,
                                 return_greedy=True)

    def make_streamer(self, timeout: Optional[float] = None):
        """A streamer that decodes the new tokens as :meth:`decode` does."""
        return self.adapter.make_streamer(timeout)
