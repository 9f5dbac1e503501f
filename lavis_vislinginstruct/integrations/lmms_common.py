"""What our lmms-eval models share (:mod:`.lmms_eval` over VisLingInstruct, :mod:`.lmms_eval_hf` over HF
image-text-to-text models): the request loops, decoding arguments, images and AIO traces.

:class:`AdapterBase` answers lmms-eval's requests through two methods a model class provides:

* ``_generate_batch(contexts, images, decoding)`` -> (answers, traces): ``generate_until`` groups requests by their
  ``generation_kwargs`` (lmms-eval's ``Collator``), batches each group longest prompt first, and cuts each answer at
  the first ``until`` string;
* ``_score_batch(contexts, images, candidates)`` -> (scores, greedy, traces): ``loglikelihood`` puts all requests of
  one document (same context, same image) together, so the image and the prompt are read once and every
  continuation is scored against that shared prefix; each request gets ``(loss, is_greedy)`` wrapped in a
  ``GenerationResult`` (see :mod:`.lmms_eval` for why).

``images`` are the documents' images, one per document (several are put side by side). With AIO on, each
document's trace is appended to ``<folder>/<time>_aio_traces_<task>.jsonl`` as soon as its batch is answered
(:meth:`AdapterBase._write_traces`); the folder is where lmms-eval's command line writes ``--log_samples``.
"""
import argparse
import json
import logging
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.utils import Collator
from PIL import Image
from tqdm import tqdm

from ..aio.config import AIO_MODES
from ..models.generation import Decoding

logger = logging.getLogger(__name__)

#: generation_kwargs keys the adapters read; others are reported once and ignored.
GEN_KEYS = ("until", "max_new_tokens", "temperature", "do_sample", "top_p", "num_beams")


class AdapterBase:
    """Request loops, decoding and traces of an lmms-eval model (module docstring).

    A subclass sets ``name`` (for messages), ``_model``, ``_device``, ``decoding`` (the run's :class:`Decoding`),
    ``max_new_tokens``, ``batch_size_per_gpu``, ``aio_mode`` and ``variant``, then calls :meth:`_start_traces`.
    """

    name = "the model"

    @property
    def model(self):
        """The model the requests are answered with."""
        return self._model

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    def _set_up_run(self, device: str, batch_size: Any, score: str, max_new_tokens: int, min_new_tokens: int,
                    repetition_penalty: float, length_penalty: float) -> None:
        """The model arguments both adapters share: rank, device, batch size, ranking score and the answers'
        default decoding (greedy; a task's ``generation_kwargs`` change it per request)."""
        if score not in ("sum", "mean"):
            raise ValueError(f"score must be sum or mean, got {score!r}")
        self._rank = int(os.environ.get("RANK", 0))
        self._world_size = int(os.environ.get("WORLD_SIZE", 1))
        self._device = device_of(str(device), self._world_size)
        self.batch_size_per_gpu = positive_batch_size(batch_size)
        self.decoding = Decoding(max_new_tokens=int(max_new_tokens), min_new_tokens=int(min_new_tokens), num_beams=1,
                                 repetition_penalty=float(repetition_penalty), length_penalty=float(length_penalty))
        self.max_new_tokens = int(max_new_tokens)
        self.score = score

    def _start_traces(self, aio_traces: str) -> None:
        """Where AIO traces go (``aio_traces``, else lmms-eval's ``--log_samples`` folder), warned when nowhere."""
        self.trace_folder = aio_traces or cli_samples_folder() or ""
        self._trace_stamp = stamp()
        self._warned: set = set()
        if self.aio_mode != "off" and not self.trace_folder:
            logger.warning("AIO is on but its traces are not saved: pass aio_traces=FOLDER or --output_path")

    # ----------------------------------------------------------------------------------------- generation

    def generate_until(self, requests: List[Instance]) -> List[str]:
        """One answer per request, batched within each group of equal ``generation_kwargs``."""
        collator = Collator([r.args for r in requests], lambda a: (-len(a[0]), a[0]), grouping=True)
        answers: List[str] = []
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc=f"{self.name} generating")
        for chunk in collator.get_batched(n=self.batch_size_per_gpu):
            contexts, all_kwargs, visual_fns, doc_ids, tasks, splits = zip(*chunk)
            decoding, until = self._decoding(all_kwargs[0])
            images = self._images(visual_fns, doc_ids, tasks, splits)
            texts, traces = self._generate_batch(_prompts(contexts), images, decoding)
            texts = [cut(text, until) for text in texts]
            self._write_traces("generate_until", traces, doc_ids, tasks, splits)
            for context, kwargs, text in zip(contexts, all_kwargs, texts):
                self.cache_hook.add_partial("generate_until", (context, kwargs), text)
            answers.extend(texts)
            bar.update(len(chunk))
        bar.close()
        return collator.get_original(answers)

    def generate_until_multi_round(self, requests) -> List[str]:
        raise NotImplementedError(f"{self.name} answers single instructions; multi-round tasks are not supported")

    def _decoding(self, gen_kwargs: Dict[str, Any]) -> Tuple[Decoding, List[str]]:
        """The decoding and the stop strings of a task's ``generation_kwargs``."""
        kwargs = dict(gen_kwargs or {})
        for key in sorted(set(kwargs) - set(GEN_KEYS)):
            self._warn_once(f"generation_kwargs[{key!r}] is not used by {self.name} and is ignored")
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
        ``GenerationResult``; one prefix per document."""
        groups: Dict[tuple, Dict[str, Any]] = {}
        for index, request in enumerate(requests):
            args = request.args
            if len(args) < 6:
                raise ValueError(
                    f"loglikelihood request {args[:2]!r} has no image: {self.name} scores continuations given "
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
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc=f"{self.name} scoring")
        for batch in collator.get_batched(n=self.batch_size_per_gpu):
            contexts, visual_fns, doc_ids, tasks, splits = zip(*(g["args"] for g in batch))
            images = self._images(visual_fns, doc_ids, tasks, splits)
            # a continuation is scored as a candidate answer of its own: the target delimiter's space is dropped
            candidates = [[c.strip() for c in g["continuations"]] for g in batch]
            scores, greedy, traces = self._score_batch(_prompts(contexts), images, candidates)
            self._write_traces("loglikelihood", traces, doc_ids, tasks, splits)
            for group, context, row_scores, row_greedy in zip(batch, contexts, scores, greedy):
                for index, continuation, nll, hit in zip(group["indices"], group["continuations"], row_scores,
                                                         row_greedy):
                    pair = (float(nll), bool(hit))
                    results[index] = GenerationResult(text=pair)  # type: ignore[arg-type]  (see lmms_eval.py)
                    self.cache_hook.add_partial("loglikelihood", (context, continuation), pair)
                bar.update(len(group["indices"]))
        bar.close()
        return results

    # -------------------------------------------------------------------------------------------- helpers

    def _images(self, visual_fns, doc_ids, tasks, splits) -> List[Image.Image]:
        """One RGB image per document."""
        return [self._one_image(visual_fn(self.task_dict[task][split][doc_id]), task, doc_id).convert("RGB")
                for visual_fn, doc_id, task, split in zip(visual_fns, doc_ids, tasks, splits)]

    def _one_image(self, visuals: Any, task: str, doc_id: Any) -> Image.Image:
        """The document's image; several (MMMU) are put side by side in one, as lmms-eval's ``instructblip`` also
        makes one image of them (its own tiling draws labels with a font that a machine may lack)."""
        visuals = list(visuals or [])
        if not visuals:
            raise ValueError(f"{task} document {doc_id} has no image: {self.name} answers about an image")
        bad = [type(v).__name__ for v in visuals if not isinstance(v, Image.Image)]
        if bad:
            raise ValueError(f"{task} document {doc_id}: {self.name} reads images, got {', '.join(bad)}")
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


def _prompts(contexts: Sequence[str]) -> List[str]:
    """The instructions of lmms-eval contexts: the image is given as an image, not as an ``<image>`` text token."""
    return [c.replace("<image>", "").strip() for c in contexts]


def aio_mode(value: Any) -> str:
    """The ``aio`` model argument as an AIO mode (``aio=off`` reaches us as ``False``)."""
    mode = "off" if value is False else str(value)
    if mode not in AIO_MODES:
        raise ValueError(f"aio must be one of {', '.join(AIO_MODES)}, got {value!r}")
    return mode


#: The ``dtype`` model argument's spellings -> its name (auto | fp16 | bf16 | fp32).
DTYPE_NAMES = {"auto": "auto", "fp16": "fp16", "float16": "fp16", "bf16": "bf16", "bfloat16": "bf16", "fp32": "fp32",
               "float32": "fp32"}


def dtype_name(value: Any) -> str:
    """The ``dtype`` model argument as ``auto``, ``fp16``, ``bf16`` or ``fp32``."""
    if str(value) not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {value!r}")
    return DTYPE_NAMES[str(value)]


def positive_batch_size(batch_size: Any) -> int:
    """lmms-eval's ``--batch_size`` (a string on its command line) as a positive integer."""
    if isinstance(batch_size, str) and batch_size.strip().isdigit():
        batch_size = int(batch_size)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def device_of(device: str, world_size: int) -> torch.device:
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


def cut(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first stop string, stripped."""
    for stop in until:
        text = text.split(stop)[0]
    return text.strip()


def cli_args(argv: Sequence[str]) -> Optional[argparse.Namespace]:
    """lmms-eval's ``--output_path``, ``--model_args`` and ``--timezone`` if this process is its command line."""
    program = argv[0] if argv else ""
    if "lmms" not in os.path.basename(program) and not program.endswith(os.path.join("lmms_eval", "__main__.py")):
        return None
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--output_path", default="")
    parser.add_argument("--model_args", default="")
    parser.add_argument("--timezone", default="")
    return parser.parse_known_args(list(argv[1:]))[0]


def cli_samples_folder(argv: Optional[Sequence[str]] = None) -> str:
    """Where lmms-eval's command line writes ``--log_samples`` (``<output_path>/<model name>``), or ``""``."""
    args = cli_args(sys.argv if argv is None else argv)
    if args is None or not args.output_path:
        return ""
    from lmms_eval.loggers.evaluation_tracker import GeneralConfigTracker
    from lmms_eval.utils import sanitize_model_name

    name = sanitize_model_name(GeneralConfigTracker._get_model_name(args.model_args))  # lmms-eval's own naming
    return os.path.join(args.output_path, name) if name else args.output_path


def stamp() -> str:
    """A time stamp in lmms-eval's format (its ``--timezone``, if given on its command line)."""
    from lmms_eval.utils import get_datetime_str

    args = cli_args(sys.argv)
    return get_datetime_str(timezone=args.timezone) if args and args.timezone else get_datetime_str()
