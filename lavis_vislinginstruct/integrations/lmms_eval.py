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
import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from lmms_eval.utils import Collator
from PIL import Image
from tqdm import tqdm

from ..inference.pipeline import VisLingInstructPipeline
from ..inference.rows import get_row, row_for
from ..models.config import AIO_MODES, LLMCfg
from ..models.generation import Decoding
from ..models.loading import load_with_options
from ..tasks.benchmarks import variant_name

logger = logging.getLogger(__name__)

#: ``dtype`` argument -> the model config's ``llm.dtype``.
DTYPES = {"auto": "auto", "fp16": "fp16", "float16": "fp16", "bf16": "bf16", "bfloat16": "bf16", "fp32": "fp32",
          "float32": "fp32"}
#: generation_kwargs keys this adapter reads; others are reported once and ignored.
GEN_KEYS = ("until", "max_new_tokens", "temperature", "do_sample", "top_p", "num_beams")


class VisLingInstructLmms(lmms):
    """lmms-eval model over a VisLingInstruct model; arguments are described in the module docstring."""

    is_simple = True

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
        if score not in ("sum", "mean"):
            raise ValueError(f"score must be sum or mean, got {score!r}")
        if isinstance(batch_size, str) and batch_size.strip().isdigit():  # lmms-eval's --batch_size is a string
            batch_size = int(batch_size)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._rank = int(os.environ.get("RANK", 0))
        self._world_size = int(os.environ.get("WORLD_SIZE", 1))
        self._device = _device(str(device), self._world_size)
        overrides = _model_options(
            checkpoint=checkpoint, finetuned=finetuned, hf_checkpoint=hf_checkpoint, options=options, aio=aio,
            cmaa=cmaa, dtype=dtype, load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit,
        )
        self._model, vis_processors, _ = load_with_options(
            arch or None, model_type or None, overrides, device=str(self._device), spec=model_spec or None
        )
        self._vis_processor = vis_processors["eval"]
        self.batch_size_per_gpu = batch_size
        self.decoding = Decoding(max_new_tokens=int(max_new_tokens), min_new_tokens=int(min_new_tokens), num_beams=1,
                                 repetition_penalty=float(repetition_penalty), length_penalty=float(length_penalty))
        self.max_new_tokens = int(max_new_tokens)
        self.score = score
        self.chunk_size = int(chunk_size)
        cfg = self._model.cfg
        self.row = _row(row, cfg, cmaa, aio)
        self.pipeline = VisLingInstructPipeline(self._model, self.row, self.decoding)
        self.aio_mode = self.row.aio
        self.variant = variant_name(self.row, cfg.aio.select)
        self.trace_folder = aio_traces or _cli_samples_folder() or ""
        self._trace_stamp = _stamp()
        self._warned: set = set()
        logger.info("VisLingInstruct for lmms-eval: %s (Table 2 row %s) on %s", type(self._model).__name__,
                    self.variant, self._device)
        if self.aio_mode != "off" and not self.trace_folder:
            logger.warning("AIO is on but its traces are not saved: pass aio_traces=FOLDER or --output_path")

    # ------------------------------------------------------------------------------------------ properties

    @property
    def model(self):
        """The VisLingInstruct model."""
        return self._model

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    # ----------------------------------------------------------------------------------------- generation

    def generate_until(self, requests: List[Instance]) -> List[str]:
        """One answer per request, batched within each group of equal ``generation_kwargs``."""
        collator = Collator([r.args for r in requests], lambda a: (-len(a[0]), a[0]), grouping=True)
        answers: List[str] = []
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="VisLingInstruct generating")
        for chunk in collator.get_batched(n=self.batch_size):
            contexts, all_kwargs, visual_fns, doc_ids, tasks, splits = zip(*chunk)
            decoding, until = self._decoding(all_kwargs[0])
            samples = self._samples(contexts, visual_fns, doc_ids, tasks, splits)
            texts, traces = self.pipeline.generate(samples, decoding, return_traces=True)
            texts = [_cut(text, until) for text in texts]
            self._write_traces("generate_until", traces, doc_ids, tasks, splits)
            for context, kwargs, text in zip(contexts, all_kwargs, texts):
                self.cache_hook.add_partial("generate_until", (context, kwargs), text)
            answers.extend(texts)
            bar.update(len(chunk))
        bar.close()
        return collator.get_original(answers)

    def generate_until_multi_round(self, requests) -> List[str]:
        raise NotImplementedError("VisLingInstruct answers single instructions; multi-round tasks are not supported")

    def _decoding(self, gen_kwargs: Dict[str, Any]) -> Tuple[Decoding, List[str]]:
        """The decoding and the stop strings of a task's ``generation_kwargs``."""
        kwargs = dict(gen_kwargs or {})
        for key in sorted(set(kwargs) - set(GEN_KEYS)):
            self._warn_once(f"generation_kwargs[{key!r}] is not used by VisLingInstruct and is ignored")
        until = kwargs.get("until") or []
        if isinstance(until, str):
            until = [until]
        if not isinstance(until, (list, tuple)):
            raise ValueError(f"generation_kwargs['until'] must be a string or a list of strings, got {until!r}")
        temperature = float(kwargs.get("temperature") or 0.0)
        sample = bool(kwargs.get("do_sample", temperature > 0))
        if sample and temperature <= 0:
            self._warn_once("do_sample is set with temperature 0: sampling at temperature 1")
            temperature = 1.0
        top_p = kwargs.get("top_p")
        decoding = self.decoding.replace(
            do_sample=sample,
            num_beams=int(kwargs.get("num_beams") or 1),
            max_new_tokens=int(kwargs.get("max_new_tokens") or self.max_new_tokens),
            top_p=1.0 if top_p is None else float(top_p),
            temperature=temperature if sample else 1.0,
        )
        return decoding, [s for s in until if s]

    # ---------------------------------------------------------------------------------------- likelihoods

    def loglikelihood(self, requests: List[Instance]) -> List[GenerationResult]:
        """``(NLL of the continuation given image and context, is_greedy)`` per request, wrapped in a
        ``GenerationResult`` (module docstring); one prefix per document."""
        groups: Dict[tuple, Dict[str, Any]] = {}
        for index, request in enumerate(requests):
            args = request.args
            if len(args) < 6:
                raise ValueError(
                    f"loglikelihood request {args[:2]!r} has no image: VisLingInstruct scores continuations given "
                    "an image (unconditional requests such as acc_mutual_info's are not supported)"
                )
            context, continuation, visual_fn, doc_id, task, split = args[:6]
            group = groups.setdefault(
                (task, split, doc_id, context),
                {"args": (context, visual_fn, doc_id, task, split), "continuations": [], "indices": []},
            )
            group["continuations"].append(continuation)
            group["indices"].append(index)
        collator = Collator(list(groups.values()), lambda g: (-len(g["args"][0]), g["args"][0]))
        results: List[Optional[GenerationResult]] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc="VisLingInstruct scoring")
        for batch in collator.get_batched(n=self.batch_size):
            contexts, visual_fns, doc_ids, tasks, splits = zip(*(g["args"] for g in batch))
            samples = self._samples(contexts, visual_fns, doc_ids, tasks, splits)
            candidates = [[c.strip() for c in g["continuations"]] for g in batch]
            out = self.pipeline.predict_class(
                samples, candidates=candidates, score=self.score, chunk_size=self.chunk_size, return_traces=True,
                return_greedy=True,
            )
            self._write_traces("loglikelihood", out["traces"], doc_ids, tasks, splits)
            for group, context, scores, greedy in zip(batch, contexts, out["scores"], out["greedy"]):
                for index, continuation, nll, hit in zip(group["indices"], group["continuations"], scores, greedy):
                    pair = (float(nll), bool(hit))
                    results[index] = GenerationResult(text=pair)  # type: ignore[arg-type]  (module docstring)
                    self.cache_hook.add_partial("loglikelihood", (context, continuation), pair)
                bar.update(len(group["indices"]))
        bar.close()
        return results

    # -------------------------------------------------------------------------------------------- helpers

    def _samples(self, contexts, visual_fns, doc_ids, tasks, splits) -> Dict[str, Any]:
        """A ``samples`` batch (``docs/design.md``): processed images, prompts and ids."""
        images = []
        for visual_fn, doc_id, task, split in zip(visual_fns, doc_ids, tasks, splits):
            visuals = visual_fn(self.task_dict[task][split][doc_id])
            images.append(self._vis_processor(self._one_image(visuals, task, doc_id).convert("RGB")))
        return {
            "image": torch.stack(images).to(self._device),
            "text_input": [c.replace("<image>", "").strip() for c in contexts],  # the image is not a text token here
            "instance_id": [f"{task}/{doc_id}" for task, doc_id in zip(tasks, doc_ids)],
        }

    def _one_image(self, visuals: Any, task: str, doc_id: Any) -> Image.Image:
        """The document's image; several (MMMU) are put side by side in one, as lmms-eval's ``instructblip`` also
        makes one image of them (its own tiling draws labels with a font that a machine may lack)."""
        visuals = list(visuals or [])
        if not visuals:
            raise ValueError(f"{task} document {doc_id} has no image: VisLingInstruct answers about an image")
        bad = [type(v).__name__ for v in visuals if not isinstance(v, Image.Image)]
        if bad:
            raise ValueError(f"{task} document {doc_id}: VisLingInstruct reads images, got {', '.join(bad)}")
        if len(visuals) == 1:
            return visuals[0]
        self._warn_once(f"{task}: documents with several images are read as one image, the images side by side")
        return side_by_side(visuals)

    def _write_traces(self, request: str, traces: Sequence[Any], doc_ids, tasks, splits) -> None:
        """Append this batch's AIO traces (``AIOTrace.to_dict()``), one line per document, to each task's file."""
        if self.aio_mode == "off" or not self.trace_folder:
            return
        lines: Dict[str, List[str]] = {}
        for trace, doc_id, task, split in zip(traces, doc_ids, tasks, splits):
            record = {"doc_id": doc_id, "task": task, "split": split, "request": request, "variant": self.variant,
                      "trace": trace.to_dict()}
            lines.setdefault(task, []).append(json.dumps(record, ensure_ascii=False, default=str))
        os.makedirs(self.trace_folder, exist_ok=True)
        for task, rows in lines.items():
            with open(self.trace_path(task), "a", encoding="utf-8") as handle:
                handle.write("\n".join(rows) + "\n")

    def trace_path(self, task: str) -> str:
        """The JSONL file that receives ``task``'s AIO traces."""
        rank = f"_rank{self.rank}" if self.world_size > 1 else ""
        return os.path.join(self.trace_folder, f"{self._trace_stamp}_aio_traces_{task}{rank}.jsonl")

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning(message)


def _model_options(
    checkpoint: str, finetuned: str, hf_checkpoint: str, options: str, aio: Any, cmaa: Any, dtype: str,
    load_in_8bit: bool, load_in_4bit: bool,
) -> List[str]:
    """Model-config overrides (``key=value``) from the model arguments; the config loader checks each value."""
    out = [f"{key}={value}" for key, value in
           (("checkpoint", checkpoint), ("finetuned", finetuned), ("hf_checkpoint", hf_checkpoint)) if value]
    if aio is not None:
        mode = "off" if aio is False else aio  # aio=off/false both mean off
        if mode not in AIO_MODES:
            raise ValueError(f"aio must be one of {', '.join(AIO_MODES)}, got {aio!r}")
        out.append(f"aio.mode={mode}")
    if cmaa is not None:
        if not isinstance(cmaa, bool):
            raise ValueError(f"cmaa must be true or false, got {cmaa!r}")
        out.append(f"cmaa.enabled={cmaa}")
    if str(dtype) not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if DTYPES[str(dtype)] != "auto":
        out.append(f"llm.dtype={DTYPES[str(dtype)]}")
        if DTYPES[str(dtype)] == "fp32":
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
    mode = "off" if aio is False else aio
    for name, given, wanted in (("cmaa", cmaa, chosen.cmaa), ("aio", mode, chosen.aio)):
        if given is not None and given != wanted:
            raise ValueError(f"{name}={given} contradicts row={chosen.name} ({name}={wanted}): give the row alone")
    return chosen


def _device(device: str, world_size: int) -> torch.device:
    """The device of this process (``cuda:<LOCAL_RANK>`` under a multi-process launcher)."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device} but no CUDA device is visible; pass device=cpu (or --device cpu)")
        if world_size > 1:
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device(device)


def side_by_side(images: Sequence[Image.Image]) -> Image.Image:
    """The images left to right, each scaled to the height of the tallest, on a black RGB canvas."""
    height = max(image.height for image in images)
    scaled = [image.convert("RGB").resize((max(1, round(image.width * height / image.height)), height))
              for image in images]
    canvas = Image.new("RGB", (sum(image.width for image in scaled), height))
    x = 0
    for image in scaled:
        canvas.paste(image, (x, 0))
        x += image.width
    return canvas


def _cut(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first stop string, stripped."""
    for stop in until:
        text = text.split(stop)[0]
    return text.strip()


def _cli_args(argv: Sequence[str]) -> Optional[argparse.Namespace]:
    """lmms-eval's ``--output_path``, ``--model_args`` and ``--timezone`` if this process is its command line."""
    program = argv[0] if argv else ""
    if "lmms" not in os.path.basename(program) and not program.endswith(os.path.join("lmms_eval", "__main__.py")):
        return None
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--output_path", default="")
    parser.add_argument("--model_args", default="")
    parser.add_argument("--timezone", default="")
    return parser.parse_known_args(list(argv[1:]))[0]


def _cli_samples_folder(argv: Optional[Sequence[str]] = None) -> str:
    """Where lmms-eval's command line writes ``--log_samples`` (``<output_path>/<model name>``), or ``""``."""
    args = _cli_args(sys.argv if argv is None else argv)
    if args is None or not args.output_path:
        return ""
    from lmms_eval.loggers.evaluation_tracker import GeneralConfigTracker
    from lmms_eval.utils import sanitize_model_name

    name = sanitize_model_name(GeneralConfigTracker._get_model_name(args.model_args))  # lmms-eval's own naming
    return os.path.join(args.output_path, name) if name else args.output_path


def _stamp() -> str:
    """A time stamp in lmms-eval's format (its ``--timezone``, if given on its command line)."""
    from lmms_eval.utils import get_datetime_str

    args = _cli_args(sys.argv)
    return get_datetime_str(timezone=args.timezone) if args and args.timezone else get_datetime_str()
