"""VisLingInstruct (Zhu et al., NAACL 2024) as an lmms-eval model: ``lmms-eval --model vislinginstruct``.

lmms-eval (PyPI ``lmms-eval`` 0.7.x) finds :class:`VisLingInstructLmms` through the entry-point group
``lmms_eval.models`` of this distribution (``setup.cfg``, ``lavis_vislinginstruct_lmms.py``; ``pip install -e
".[lmms]"``); nothing of lmms-eval is copied or patched. The class answers lmms-eval's request types with the
model's own inference code:

Every request is answered through one :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline`
for the run's row of Table 2 (``row=vanilla|ema|ema_rewrite|ema_aio|ema_aio_shuffled``):

* ``generate_until``: the pipeline's ``generate`` on batches of (image, prompt). Requests are grouped by their
  ``generation_kwargs`` (lmms-eval's ``Collator``) and each group is batched, longest prompt first. The task's
  ``max_new_tokens``, ``temperature`` (0: greedy), ``do_sample``, ``top_p`` and ``num_beams`` are the decoding
  settings; ``until`` cuts the answer at the first stop string. Repetition and length penalty and a minimum
  length are model arguments (defaults: those of HF ``generate``, as lmms-eval's ``instructblip`` runs).
* ``loglikelihood`` (multiple-choice tasks): all requests of one document (same context, same image) are scored
  together by the pipeline's ``predict_class``: the image and the prompt are encoded once and every continuation is
  scored against that shared prefix (``llm_adapters.rank``). A continuation is scored as a candidate answer
  of its own, so the space lmms-eval puts before it (``target_delimiter``) is dropped: the LLM tokenizers start
  a candidate as a new word anyway. Each request gets ``(loss, is_greedy)``: the loss is the continuation's
  negative log-likelihood, because lmms-eval's models return a loss and its ``multiple_choice`` scoring takes the
  argmin (``acc``; ``acc_norm`` divides by the choice's length), whatever its API docstring says. For FlanT5 the
  candidate ends with ``</s>``, as in LAVIS's ranking, and both numbers include it. lmms-eval 0.7.x turns every
  result that is not a string or a ``GenerationResult`` into its ``str()`` (``unwrap_generation_output``), which
  breaks multiple-choice scoring for tuples; so each pair is handed over as ``GenerationResult(text=pair)``,
  which it unwraps back into the pair.
* ``generate_until_multi_round``: not supported; VisLingInstruct, like InstructBLIP, answers one instruction.

Model arguments (``--model_args key=value,...``): ``arch`` (``vislinginstruct_vicuna`` | ``vislinginstruct_t5``)
and ``model_type``, or ``model_spec`` (a spec file, :mod:`lavis_vislinginstruct.models.spec`); ``checkpoint``,
``finetuned``, ``hf_checkpoint``; ``options`` (more model-config overrides, ``;``-separated ``key=value``);
``row``, the row of Table 2 (:mod:`lavis_vislinginstruct.inference.rows`); without it, ``cmaa`` (true/false) and
``aio`` (off | rewrite | full) choose the row with those switches (unset: what the config or spec says), and with it
they must agree with the row; ``device``, ``dtype`` (auto | fp16 | bf16 | fp32), ``load_in_8bit`` / ``load_in_4bit``;
``batch_size``; ``repetition_penalty``, ``length_penalty``, ``min_new_tokens``, ``max_new_tokens`` (when the task
gives none); ``score`` (sum: the NLL of the whole continuation, the default, as ``evaluate.py`` ranks; mean: per
token, as lmms-eval's LLaVA returns it); ``chunk_size``; ``aio_traces`` (folder of the AIO traces).
The device: ``device`` or lmms-eval's ``--device`` (not both: lmms-eval passes its own as a keyword), default cuda.

AIO traces (section 3.2): with AIO on, each document's trace (initial, rewritten and optimized instruction, IAS,
which one was used) is appended, as soon as its batch is answered, to ``<folder>/<time>_aio_traces_<task>.jsonl``,
one JSON object per document keyed by ``doc_id``. The folder is ``aio_traces`` if given, else the one where
lmms-eval's command line writes ``--log_samples`` (``<output_path>/<model name>/``, beside
``<time>_samples_<task>.jsonl``). lmms-eval gives the model the formatted prompt only, not the question or options
on their own, so AIO's content guard has no spans to keep here.
"""
import dataclasses
import logging
from typing import Any, Dict, List, Optional

import torch
from lmms_eval.api.model import lmms
from PIL import Image

from ..inference.pipeline import VisLingInstructPipeline
from ..inference.rows import get_row, row_for
from ..models.config import LLMCfg
from ..models.generation import Decoding
from ..models.loading import load_with_options
from ..tasks.benchmarks import variant_name
from .lmms_common import (
    AdapterBase, aio_mode, cli_samples_folder, cut, device_of, dtype_name, side_by_side, stamp,
)

# the names the adapter's callers and tests know
_cut, _cli_samples_folder, _device, _stamp = cut, cli_samples_folder, device_of, stamp
__all__ = ["VisLingInstructLmms", "side_by_side"]

logger = logging.getLogger(__name__)


class VisLingInstructLmms(AdapterBase, lmms):
    """lmms-eval model over a VisLingInstruct model; arguments are described in the module docstring (the request
    loops are :class:`~.lmms_common.AdapterBase`'s)."""

    is_simple = True
    name = "VisLingInstruct"

    def __init__(
        self,
        arch: str = "",
        model_type: str = "",
        model_spec: str = "",
        checkpoint: str = "",
        finetuned: str = "",
        hf_checkpoint: str = "",
        options: str = "",
        aio: Optional[str] = None,
        cmaa: Optional[bool] = None,
        row: Optional[str] = None,
        device: str = "cuda",
        dtype: str = "auto",
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        batch_size: int = 1,
        max_batch_size: Optional[int] = None,
        repetition_penalty: float = 1.0,
        length_penalty: float = 1.0,
        min_new_tokens: int = 0,
        max_new_tokens: int = 1024,
        score: str = "sum",
        chunk_size: int = 128,
        aio_traces: str = "",
    ) -> None:
        super().__init__()
        self._set_up_run(device, batch_size, score, max_new_tokens, min_new_tokens, repetition_penalty,
                         length_penalty)
        overrides = _model_options(
            checkpoint=checkpoint, finetuned=finetuned, hf_checkpoint=hf_checkpoint, options=options, aio=aio,
            cmaa=cmaa, dtype=dtype, load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit,
        )
        self._model, vis_processors, _ = load_with_options(
            arch or None, model_type or None, overrides, device=str(self._device), spec=model_spec or None
        )
        self._vis_processor = vis_processors["eval"]
        self.chunk_size = int(chunk_size)
        cfg = self._model.cfg
        self.row = _row(row, cfg, cmaa, aio)
        self.pipeline = VisLingInstructPipeline(self._model, self.row, self.decoding)
        self.aio_mode = self.row.aio
        self.variant = variant_name(self.row, cfg.aio.select)
        logger.info("VisLingInstruct for lmms-eval: %s (Table 2 row %s) on %s", type(self._model).__name__,
                    self.variant, self._device)
        self._start_traces(aio_traces)

    # ------------------------------------------------------------------------------------- the two hooks

    def _generate_batch(self, prompts: List[str], images: List[Image.Image], decoding: Decoding):
        """The pipeline's answers and traces for a batch (:class:`~.lmms_common.AdapterBase`)."""
        return self.pipeline.generate(self._samples(prompts, images), decoding, return_traces=True)

    def _score_batch(self, prompts: List[str], images: List[Image.Image], candidates: List[List[str]]):
        """The pipeline's ranking scores (one prefix per document), greedy flags and traces."""
        out = self.pipeline.predict_class(
            self._samples(prompts, images), candidates=candidates, score=self.score, chunk_size=self.chunk_size,
            return_traces=True, return_greedy=True,
        )
        return out["scores"], out["greedy"], out["traces"]

    def _samples(self, prompts: List[str], images: List[Image.Image]) -> Dict[str, Any]:
        """A ``samples`` batch (``docs/design.md``): processed images and prompts."""
        return {"image": torch.stack([self._vis_processor(image) for image in images]).to(self._device),
                "text_input": list(prompts)}


def _model_options(
    checkpoint: str, finetuned: str, hf_checkpoint: str, options: str, aio: Any, cmaa: Any, dtype: str,
    load_in_8bit: bool, load_in_4bit: bool,
) -> List[str]:
    """Model-config overrides (``key=value``) from the model arguments; the config loader checks each value."""
    out = [f"{key}={value}" for key, value in
           (("checkpoint", checkpoint), ("finetuned", finetuned), ("hf_checkpoint", hf_checkpoint)) if value]
    if aio is not None:
        out.append(f"aio.mode={aio_mode(aio)}")
    if cmaa is not None:
        if not isinstance(cmaa, bool):
            raise ValueError(f"cmaa must be true or false, got {cmaa!r}")
        out.append(f"cmaa.enabled={cmaa}")
    name = dtype_name(dtype)  # the model config's llm.dtype
    if name != "auto":
        out.append(f"llm.dtype={name}")
        if name == "fp32":
            out.append("vision.precision=fp32")
    llm_fields = {f.name for f in dataclasses.fields(LLMCfg)}
    for name, value in (("load_in_8bit", load_in_8bit), ("load_in_4bit", load_in_4bit)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        if value and name not in llm_fields:
            raise ValueError(f"{name}: this version of the model config has no llm.{name}; 8/4-bit loading is "
                             "not available")
        if value:
            out.append(f"llm.{name}=True")
    out += [item.strip() for item in str(options or "").split(";") if item.strip()]
    return out


def _row(row: Optional[str], cfg, cmaa: Any, aio: Any):
    """The run's row: ``row`` by name (``cmaa``/``aio``, when given, must agree with it), else the row of the
    model's switches (which ``cmaa``/``aio`` have set)."""
    if not row:
        return row_for(cfg.cmaa.enabled, cfg.aio.mode, cfg.aio.order)
    chosen = get_row(str(row))
    mode = None if aio is None else aio_mode(aio)
    for name, given, wanted in (("cmaa", cmaa, chosen.cmaa), ("aio", mode, chosen.aio)):
        if given is not None and given != wanted:
            raise ValueError(f"{name}={given} contradicts row={chosen.name} ({name}={wanted}): give the row alone")
    return chosen
