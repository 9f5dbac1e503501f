"""AIO on any HF image-text-to-text model as an lmms-eval model: ``lmms-eval --model vislinginstruct_hf``.

Loads a folder (or hub id) that ``AutoModelForImageTextToText`` + ``AutoProcessor`` read (LLaVA-1.5, LLaVA-NeXT,
Qwen2-VL, InstructBLIP, ...) and answers lmms-eval's requests through one
:class:`~lavis_vislinginstruct.inference.hf_pipeline.VisionLanguagePipeline` (the model's own chat template, or for
InstructBLIP the instruction itself with its Q-Former reading it; AIO around it;
:mod:`lavis_vislinginstruct.models.hf_vlm` says what AIO means on each family). Registered through our
entry point (``lavis_vislinginstruct_lmms.py``), like ``--model vislinginstruct``; the request loops, decoding
arguments and AIO traces are :class:`~.lmms_common.AdapterBase`'s, shared with that adapter:

* ``generate_until``: the pipeline's answers; with ``aio=off`` they are the model's own ``generate`` on the
  (image, prompt) in its family's prompt, greedy unless the task samples (lmms-eval's own ``instructblip`` gives the
  same answers after the prompt, which it decodes with them).
* ``loglikelihood``: a document's continuations are scored together as the assistant's answer to (image, context):
  one prefill of the prompt, every continuation read against its key-value cache; the loss is the continuation's
  NLL (``score=sum``, the default, or ``mean`` per token), without an end-of-sequence token (InstructBLIP with
  FlanT5: with one, as LAVIS ranks).

Model arguments (``--model_args key=value,...``): ``pretrained`` (the folder); ``aio`` (off | rewrite | full);
``options`` (AIO settings, ``;``-separated ``aio.<field>=value``, e.g. ``aio.guard=none;aio.max_new_tokens=40``);
``device``, ``dtype`` (auto | fp16 | bf16 | fp32); ``batch_size``; ``repetition_penalty``, ``length_penalty``,
``min_new_tokens``, ``max_new_tokens`` (when the task gives none); ``score``; ``aio_traces`` (folder of the AIO
traces, default: beside lmms-eval's ``--log_samples``).
"""
import logging
from typing import Any, Dict, List

from lmms_eval.api.model import lmms
from PIL import Image

from ..aio.config import aio_settings
from ..inference.hf_pipeline import VisionLanguagePipeline
from ..models.checkpoint import DTYPES
from ..models.generation import Decoding
from .lmms_common import AdapterBase, aio_mode, dtype_name

logger = logging.getLogger(__name__)

#: ``dtype`` argument (:func:`~.lmms_common.dtype_name`) -> ``torch_dtype`` of ``from_pretrained``.
TORCH_DTYPES: Dict[str, Any] = {"auto": "auto", **DTYPES}


class VisLingInstructHFLmms(AdapterBase, lmms):
    """lmms-eval model over an HF image-text-to-text model with AIO; arguments in the module docstring."""

    is_simple = True
    name = "vislinginstruct_hf"

    def __init__(
        self,
        pretrained: str = "",
        aio: Any = "off",
        options: str = "",
        device: str = "cuda",
        dtype: str = "auto",
        batch_size: int = 1,
        max_batch_size: Any = None,
        repetition_penalty: float = 1.0,
        length_penalty: float = 1.0,
        min_new_tokens: int = 0,
        max_new_tokens: int = 1024,
        score: str = "sum",
        aio_traces: str = "",
    ) -> None:
        super().__init__()
        from transformers import AutoModelForImageTextToText, AutoProcessor

        mode = aio_mode(aio)
        torch_dtype = TORCH_DTYPES[dtype_name(dtype)]
        if not pretrained:
            raise ValueError("pretrained=FOLDER is required: a folder that AutoModelForImageTextToText reads")
        self._set_up_run(device, batch_size, score, max_new_tokens, min_new_tokens, repetition_penalty,
                         length_penalty)
        try:
            model = AutoModelForImageTextToText.from_pretrained(pretrained, torch_dtype=torch_dtype)
            processor = AutoProcessor.from_pretrained(pretrained)
        except (OSError, ValueError) as err:
            raise ValueError(f"pretrained={pretrained}: not an image-text-to-text model folder ({err})") from err
        self._model = model.to(self._device).eval()
        self.pipeline = VisionLanguagePipeline(self._model, processor, mode, self.decoding, aio_settings(options))
        self.aio_mode = mode
        self.variant = f"{type(model).__name__}_aio-{mode}"
        logger.info("vislinginstruct_hf: %s from %s, AIO %s, on %s", type(model).__name__, pretrained, mode,
                    self._device)
        self._start_traces(aio_traces)

    def _generate_batch(self, prompts: List[str], images: List[Image.Image], decoding: Decoding):
        """The pipeline's answers and traces (:class:`~.lmms_common.AdapterBase`)."""
        return self.pipeline.generate(images, prompts, decoding, return_traces=True)

    def _score_batch(self, prompts: List[str], images: List[Image.Image], candidates: List[List[str]]):
        """Each document's continuations scored against its one prefix, with the traces."""
        out = self.pipeline.predict_class(images, prompts, candidates, self.score)
        return out["scores"], out["greedy"], out["traces"]
