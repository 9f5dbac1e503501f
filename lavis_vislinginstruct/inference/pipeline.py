"""VisLingInstruct's inference: a model, a row of Table 2 and AIO around it (NAACL 2024, sections 3.2 and 4).

:class:`VisLingInstructPipeline` composes a :class:`~lavis_vislinginstruct.models.vislinginstruct.VisLingInstruct`
model with an :class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer` for one row (:mod:`.rows`). The
path of one instruction through it, once per stage::

    model.encode_image                 image -> features (once per call)
    optimizer.optimize                 rewrite (LLM alone), IAS (prefixes of both instructions, one pass),
                                       comparison (the IAS prefix of the best one) -> trace.used
    model.visual_prefix                only for a text no stage has read yet (the optimized instruction)
    model.adapter.generate / rank      the answer, after the prefix of trace.used

A call may be taken in its two halves, :meth:`VisLingInstructPipeline.prepare` (features and traces) and
:meth:`~VisLingInstructPipeline.answer` (the chat builds the LLM's prompt from ``trace.used`` in between).

The evaluation tasks (``vli_generation``/``vli_ranking``), the optimize CLI, the chat, the web demo, the lmms-eval
adapter and the model's own ``aio=`` convenience all answer through this class. The pipeline owns the optimizer
and so its rewrite cache; a call keeps nothing else.
"""
import dataclasses
import logging
import weakref
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch

from ..aio.config import AIOCfg
from ..aio.optimizer import InstructionOptimizer
from ..aio.trace import AIOTrace
from ..models.generation import Decoding
from ..models.inputs import candidate_lists
from .backend import VisLingInstructBackend
from .rows import Row, get_row

logger = logging.getLogger(__name__)

#: Per model, the parts (``qformer``, ``llm``) whose long instructions were already reported: a warning once per model
#: and part, later cases at debug level (a process evaluates one model, so once per run).
_REPORTED: "weakref.WeakKeyDictionary[Any, Set[str]]" = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class Prepared:
    """A call between its two halves (:meth:`VisLingInstructPipeline.prepare` and ``answer``).

    Attributes:
        features: The batch's image features (computed once).
        traces: One AIO trace per sample; ``trace.used`` is what the answer reads.
    """

    features: torch.Tensor
    traces: List[AIOTrace]

    @property
    def used(self) -> List[str]:
        return [t.used for t in self.traces]


class VisLingInstructPipeline:
    """One loaded model answering as one row (module docstring).

    Args:
        model: A VisLingInstruct model (eval mode).
        row: A row name (``vanilla``, ``ema``, ``ema_rewrite``, ``ema_aio``, ``ema_aio_shuffled``) or a :class:`Row`.
        decoding: Default decoding of :meth:`generate` (HF names).
        aio: AIO settings (templates, guard, select, caps); default: the model config's ``aio`` section. The row
            sets the mode and the order.
    """

    def __init__(
        self,
        model,
        row: Union[str, Row] = "ema_aio",
        decoding: Optional[Decoding] = None,
        aio: Optional[AIOCfg] = None,
    ):
        self.model = model
        self.row = get_row(row)
        self.decoding = decoding or Decoding()
        self.backend = VisLingInstructBackend(model, self.row.cmaa, self.row.projection)
        cfg = dataclasses.replace(aio or model.cfg.aio, mode=self.row.aio, order=self.row.order)
        self.optimizer = InstructionOptimizer(cfg, self.backend)

    # ------------------------------------------------------------------------------------------- stages

    @torch.no_grad()
    def optimize(self, samples: Dict[str, Any]) -> List[AIOTrace]:
        """The AIO traces of a batch (``samples``: ``image``, ``text_input``, optionally ``keep_spans``)."""
        try:
            return self._optimize(samples)[1]
        finally:
            self.backend.forget()

    @torch.no_grad()
    def generate(
        self,
        samples: Dict[str, Any],
        decoding: Optional[Decoding] = None,
        return_traces: bool = False,
        prompts: Optional[Sequence[str]] = None,
        streamer: Any = None,
    ) -> Union[List[str], Tuple[List[str], List[AIOTrace]]]:
        """One answer per sample, with the row's instruction (``trace.used``): :meth:`prepare`, then :meth:`answer`.

        Args:
            samples: ``image`` (B, 3, H, W), ``text_input`` and optionally ``keep_spans``.
            decoding: This call's decoding (default: the pipeline's).
            return_traces: Also return the traces.
            prompts: What the LLM reads after the visual tokens, as in :meth:`answer`.
            streamer: A streamer (:meth:`make_streamer`) fed with the tokens as they are generated.
        """
        prepared = self.prepare(samples)
        texts = self.answer(prepared, decoding, prompts, streamer)
        return (texts, prepared.traces) if return_traces else texts

    @torch.no_grad()
    def prepare(self, samples: Dict[str, Any]) -> "Prepared":
        """The first half of a call: the image features and the AIO traces (the prefixes AIO computed are kept for
        :meth:`answer`, which must follow before the next call)."""
        try:
            features, traces = self._optimize(samples)
        except BaseException:
            self.backend.forget()
            raise
        return Prepared(features, traces)

    @torch.no_grad()
    def answer(
        self,
        prepared: "Prepared",
        decoding: Optional[Decoding] = None,
        prompts: Optional[Sequence[str]] = None,
        streamer: Any = None,
    ) -> List[str]:
        """The second half of a call: the answers after the prefixes of ``trace.used``.

        Args:
            prepared: What :meth:`prepare` returned.
            decoding: This call's decoding (default: the pipeline's).
            prompts: What the LLM reads after the visual tokens, per sample, when it is not the instruction itself
                (the chat: earlier turns, then the instruction); the Q-Former reads ``trace.used`` either way.
            streamer: A streamer (:meth:`make_streamer`) fed with the tokens as they are generated.
        """
        try:
            used = prepared.used
            if prompts is None:
                prompts = used
            elif len(prompts) != len(used):
                raise ValueError(f"{len(used)} samples but {len(prompts)} LLM prompts")
            self._note_llm_cut(prepared.traces, prompts)
            prefix, mask = self.backend.visual_prefix(prepared.features, range(len(used)), used)
            decoding = decoding or self.decoding
            return self.model.adapter.generate(prefix, mask, list(prompts), decoding, streamer=streamer)
        finally:
            self.backend.forget()

    @torch.no_grad()
    def predict_class(
        self,
        samples: Dict[str, Any],
        candidates: Optional[Sequence[Sequence[str]]] = None,
        score: str = "sum",
        chunk_size: int = 128,
        return_traces: bool = False,
        return_greedy: bool = False,
    ) -> Dict[str, List[Any]]:
        """Candidates ranked by NLL after the row's instruction, as :meth:`VisLingInstruct.predict_class`."""
        if score not in ("mean", "sum"):
            raise ValueError(f"score must be one of ['mean', 'sum'], got {score!r}")
        if not torch.is_tensor(samples.get("image")):
            raise ValueError("samples['image'] must be a (B, 3, H, W) tensor")
        n = samples["image"].size(0)
        cands = candidate_lists(samples.get("candidates") if candidates is None else candidates, n)
        prepared = self.prepare(samples)
        try:
            used = prepared.used
            prefix, mask = self.backend.visual_prefix(prepared.features, range(n), used)
            out = self.model.rank(prefix, mask, used, cands, score, chunk_size, return_greedy)
        finally:
            self.backend.forget()
        if return_traces:
            out["traces"] = prepared.traces
        return out

    @torch.no_grad()
    def alignment_scores(self, samples: Dict[str, Any], instructions: Sequence[str]) -> torch.Tensor:
        """Instruction Alignment Score (eq. 3) of ``instructions[i]`` for image ``i`` with the row's prefix: per
        sample mean NLL of the instruction and ``</s>`` after the image and Appendix C's prompt (lower is better)."""
        features = self.model.encode_image(samples["image"])
        texts = self.model.instructions({"text_input": list(instructions)}, features.size(0))
        try:
            return torch.tensor(self.optimizer.alignment_scores(features, list(range(len(texts))), texts))
        finally:
            self.backend.forget()

    def make_streamer(self, timeout: Optional[float] = None):
        """A ``TextIteratorStreamer`` that decodes tokens as :meth:`generate` does (one sample, no beams)."""
        return self.model.adapter.make_streamer(timeout)

    # ------------------------------------------------------------------------------------------ helpers

    def _optimize(self, samples: Dict[str, Any]) -> Tuple[torch.Tensor, List[AIOTrace]]:
        features = self.model.encode_image(samples["image"])
        instructions = self.model.instructions(samples, features.size(0))
        traces = self.optimizer.optimize(features, instructions, samples.get("keep_spans"))
        self._report_truncation(traces)
        return features, traces

    def _note_llm_cut(self, traces: List[AIOTrace], prompts: Sequence[str]) -> None:
        """Record in each trace a generation prompt longer than the adapter keeps (its start is cut), and report it."""
        limit = self.model.adapter.prompt_limit()
        if limit is None:
            return
        for trace, n in zip(traces, self.model.adapter.token_counts(prompts)):
            if n > limit:
                trace.truncated["llm"] = [n, limit]
        self._report_truncation(traces, "llm")

    def _report_truncation(self, traces: List[AIOTrace], part: str = "qformer") -> None:
        """Warn once per model and part when instructions are cut (later cases: debug log); traces hold each case."""
        cut = [t for t in traces if part in t.truncated]
        if not cut:
            return
        reported = _REPORTED.setdefault(self.model, set())
        level = logging.DEBUG if part in reported else logging.WARNING
        n, limit = cut[0].truncated[part]
        what = "the Q-Former reads (qformer.max_txt_len" if part == "qformer" else "the LLM reads (qformer.max_txt_len"
        logger.log(
            level, "%d of %d instructions are longer than %s=%d tokens): their start is cut (first: %d tokens). "
            "Reported once; the traces record each case (trace.truncated).", len(cut), len(traces), what, limit, n,
        )
        reported.add(part)
