"""AIO around an HF image-text-to-text model (LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, InstructBLIP, ...): the sibling of
:class:`~.pipeline.VisLingInstructPipeline` for models seen through
:class:`~lavis_vislinginstruct.models.hf_vlm.HFVisionLanguageBackend` (its module docstring says how each family
reads the image and the text).

The path of one instruction, once per stage::

    backend.encode_images              the call's image features (chat models: the images; InstructBLIP: its ViT's)
    optimizer.optimize                 rewrite (text only), IAS (both instructions, one pass), comparison -> trace.used
    backend.answer / choice_nll        the answer (or the choices' scores) to trace.used, with the image

With ``mode="off"`` the answers are the model's own ``generate`` on (image, instruction) in its family's prompt
(chat models: the chat template; InstructBLIP: the instruction itself).
A call may be taken in two halves, :meth:`VisionLanguagePipeline.prepare` and :meth:`~VisionLanguagePipeline.answer`,
as the VisLingInstruct pipeline's. The pipeline owns the optimizer and so its rewrite cache.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from ..aio.config import AIO_MODES, AIOCfg
from ..aio.optimizer import InstructionOptimizer
from ..aio.trace import AIOTrace
from ..models.generation import Decoding
from ..models.hf_vlm import HFVisionLanguageBackend
from .pipeline import Prepared


class VisionLanguagePipeline:
    """An HF image-text-to-text model with AIO around it (module docstring).

    Args:
        model: An ``AutoModelForImageTextToText`` model (eval mode).
        processor: Its ``AutoProcessor``.
        mode: AIO mode: ``off``, ``rewrite`` or ``full``.
        decoding: Default decoding of the answers (HF names; default: greedy, 30 new tokens at most).
        aio: AIO settings (templates, guard, select, caps); ``mode`` overrides its mode.
        chat_template: A chat template instead of the processor's.
    """

    def __init__(self, model, processor, mode: str = "full", decoding: Optional[Decoding] = None,
                 aio: Optional[AIOCfg] = None, chat_template: Optional[str] = None):
        if mode not in AIO_MODES:
            raise ValueError(f"mode must be one of {', '.join(AIO_MODES)}, got {mode!r}")
        self.model = model
        self.backend = HFVisionLanguageBackend(model, processor, chat_template)
        self.decoding = decoding or Decoding(max_new_tokens=30, min_new_tokens=0, num_beams=1)
        self.optimizer = InstructionOptimizer(dataclasses.replace(aio or AIOCfg(), mode=mode), self.backend)

    @property
    def mode(self) -> str:
        return self.optimizer.cfg.mode

    @torch.no_grad()
    def prepare(self, images: Union[Sequence[Image.Image], Dict[str, Any]], instructions: Sequence[str] = (),
                keep_spans: Optional[Sequence[Sequence[str]]] = None) -> Prepared:
        """The first half of a call: the images and the AIO traces (``trace.used`` is what the answer reads).
        ``images`` may also be a ``samples`` dict (``image``: PIL images, ``text_input``, ``keep_spans``), as the
        chat engine passes it."""
        if isinstance(images, dict):
            images, instructions, keep_spans = images["image"], images["text_input"], images.get("keep_spans")
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions")
        features = self.backend.encode_images(images)
        return Prepared(features, self.optimizer.optimize(features, list(instructions), keep_spans))

    @torch.no_grad()
    def answer(self, prepared: Prepared, decoding: Optional[Decoding] = None, prompts: Optional[Sequence[str]] = None,
               streamer: Any = None) -> List[str]:
        """The second half: the model's answers to ``trace.used`` with the images.

        Args:
            prepared: What :meth:`prepare` returned.
            decoding: This call's decoding (default: the pipeline's).
            prompts: Whole LLM texts to answer instead (the chat: earlier turns, then ``trace.used``;
                :meth:`~lavis_vislinginstruct.models.hf_vlm.HFVisionLanguageBackend.chat_prompt`); the visual prefix
                reads ``trace.used`` either way (InstructBLIP's Q-Former).
            streamer: A streamer (:meth:`make_streamer`) fed with the tokens as they are generated.
        """
        if prompts is not None and len(prompts) != len(prepared.traces):
            raise ValueError(f"{len(prepared.traces)} samples but {len(prompts)} prompts")
        texts = prepared.used if prompts is None else list(prompts)
        return self.backend.answer(prepared.features, texts, decoding or self.decoding, templated=prompts is not None,
                                   streamer=streamer, instructions=prepared.used)

    def make_streamer(self, timeout: Optional[float] = None):
        """A ``TextIteratorStreamer`` that decodes tokens as :meth:`answer` does (one sample, no beams)."""
        return self.backend.make_streamer(timeout)

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], instructions: Sequence[str],
                 decoding: Optional[Decoding] = None, return_traces: bool = False,
                 keep_spans: Optional[Sequence[Sequence[str]]] = None
                 ) -> Union[List[str], Tuple[List[str], List[AIOTrace]]]:
        """One answer per (image, instruction): :meth:`prepare`, then :meth:`answer`."""
        prepared = self.prepare(images, instructions, keep_spans)
        texts = self.answer(prepared, decoding)
        return (texts, prepared.traces) if return_traces else texts

    @torch.no_grad()
    def optimize(self, images: Sequence[Image.Image], instructions: Sequence[str],
                 keep_spans: Optional[Sequence[Sequence[str]]] = None) -> List[AIOTrace]:
        """The AIO traces of a batch."""
        return self.prepare(images, instructions, keep_spans).traces

    @torch.no_grad()
    def predict_class(self, images: Sequence[Image.Image], instructions: Sequence[str],
                      candidates: Sequence[Sequence[str]], score: str = "sum") -> Dict[str, List[Any]]:
        """Per sample, each candidate's NLL as the answer to (image, ``trace.used``) (``scores``), whether it is the
        greedy continuation (``greedy``), the argmin (``predictions``) and the traces."""
        if len(candidates) != len(instructions):
            raise ValueError(f"{len(instructions)} instructions but {len(candidates)} candidate lists")
        prepared = self.prepare(images, instructions)
        scores, greedy = self.backend.choice_nll(prepared.features, prepared.used, candidates, score)
        return {"scores": scores, "greedy": greedy, "traces": prepared.traces,
                "predictions": [min(range(len(s)), key=s.__getitem__) for s in scores]}

    @torch.no_grad()
    def alignment_scores(self, images: Sequence[Image.Image], instructions: Sequence[str]) -> List[float]:
        """IAS (eq. 3) of ``instructions[i]`` for image ``i`` (lower is better)."""
        features = self.backend.encode_images(images)
        return self.optimizer.alignment_scores(features, list(range(len(features))), list(instructions))
