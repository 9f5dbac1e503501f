"""Multi-turn conversations with VisLingInstruct (Zhu et al., NAACL 2024): the chat engine behind the terminal and the
web demo. Library code, no user interface.

A :class:`Conversation` holds one image, its turns and each turn's AIO trace. For every new question:

1. AIO (section 3.2), when on, optimizes the current question (the instruction); the trace is kept in the turn.
2. The LLM reads the dialog as the training data gave multi-turn LLaVA conversations (section 4.1): the earlier
   turns written ``Q: ..\\nA: ..\\n``, then the current question (:func:`templates.format_llava_instruction`, with
   the ``vli_text`` normalization the LLaVA builder applies). The Q-Former reads the current question only. (In
   training the Q-Former read the whole formatted text; here it sees what the image should be read for.)
3. A history budget in LLM tokens (default ``qformer.max_txt_len``, the instruction length training kept) drops
   the oldest turns first; the turn records how many and why, and the stream announces it.
4. Tokens stream as they are generated (transformers' ``TextIteratorStreamer``, through the pipeline's
   :meth:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline.make_streamer`); the turn's answer is
   the decoded output of ``generate`` itself, so a streamed answer equals the non-streamed one. Beam search cannot
   stream (transformers refuses it): with ``num_beams > 1`` the answer arrives whole.

Each turn is answered by one :class:`~lavis_vislinginstruct.inference.pipeline.VisLingInstructPipeline` call for
the turn's row of Table 2 (:mod:`lavis_vislinginstruct.inference.rows`): AIO, then the answer to the history and
``trace.used``. :meth:`ChatEngine.compare` answers one question in the three columns of Figure 4 (Vanilla, EMA,
EMA + AIO), the rows ``vanilla``, ``ema`` and ``ema_aio`` of one model in memory.
"""
import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from ..aio.config import AIO_MODES
from ..aio.trace import AIOTrace
from ..aio.trace import format_trace as _format_trace
from ..datasets.datasets.instruct_datasets import strip_image_token
from ..inference.pipeline import VisLingInstructPipeline
from ..inference.rows import Row, config_row, get_row
from ..models.generation import Decoding
from ..processors.templates import format_llava_instruction, normalize_text

logger = logging.getLogger(__name__)

#: The columns of the web demo (Figure 4): key -> (label, row of Table 2).
COLUMNS: Dict[str, Tuple[str, str]] = {
    "vanilla": ("Vanilla", "vanilla"),
    "ema": ("EMA", "ema"),
    "ema_aio": ("EMA + AIO", "ema_aio"),
}

#: The chat's default decoding: greedy, 64 new tokens at most, no penalties.
CHAT_DECODING = Decoding(max_new_tokens=64, min_new_tokens=1, num_beams=1, repetition_penalty=1.0)


def chat_decoding(temperature: float = 0.0, top_p: float = CHAT_DECODING.top_p,
                  max_new_tokens: int = CHAT_DECODING.max_new_tokens, num_beams: int = CHAT_DECODING.num_beams,
                  **settings: Any) -> Decoding:
    """The decoding of the chat's and the web demo's controls: a temperature of 0 decodes greedily (or by beam
    search), above 0 it samples at that temperature; ``settings`` are further :class:`Decoding` fields."""
    if temperature < 0:
        raise ValueError(f"decoding temperature must be >= 0, got {temperature!r}")
    sample = temperature > 0
    return CHAT_DECODING.replace(do_sample=sample, temperature=float(temperature) if sample else 1.0,
                                 top_p=float(top_p), max_new_tokens=int(max_new_tokens), num_beams=int(num_beams),
                                 **settings)


@dataclass
class Turn:
    """One question and its answer, with everything needed to see how the answer came about.

    Attributes:
        question: The question as asked (normalized as the training data is).
        answer: The generated answer.
        instruction: What the Q-Former read and what followed the history: the question, or AIO's choice.
        prompt: The LLM's text after the visual tokens (history, then the instruction).
        row: The row of Table 2 the turn was answered as (``vanilla``, ``ema``, ``ema_aio``, ...).
        aio: AIO mode of the turn (the row's).
        trace: The AIO trace (``AIOTrace.to_dict()``; ``mode="off"`` and ``used == initial`` when AIO was off).
        history_turns: Earlier turns the LLM saw.
        dropped_turns: Oldest turns left out to fit the history budget.
        prompt_tokens: LLM tokens of ``prompt``.
        notes: What the user should know (turns dropped, a question longer than the budget).
        decoding: The decoding settings used.
        seconds: Wall time of the turn.
    """

    question: str
    answer: str = ""
    instruction: str = ""
    prompt: str = ""
    row: str = ""
    aio: str = "off"
    trace: Dict[str, Any] = field(default_factory=dict)
    history_turns: int = 0
    dropped_turns: int = 0
    prompt_tokens: int = 0
    notes: List[str] = field(default_factory=list)
    decoding: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Conversation:
    """An image and the turns about it."""

    image: Optional[Image.Image] = None
    image_name: str = ""
    turns: List[Turn] = field(default_factory=list)

    def history(self) -> List[Tuple[str, str]]:
        """``(question, answer)`` of every turn, oldest first, normalized as the LLaVA builder normalizes them."""
        return [(t.question, normalize_text(t.answer)) for t in self.turns]

    def set_image(self, image: Image.Image, name: str = "") -> None:
        """A new image starts a new conversation (the turns were about the old one)."""
        self.image, self.image_name, self.turns = image, name, []

    def reset(self) -> None:
        """Forget the turns, keep the image."""
        self.turns = []

    def to_dict(self) -> Dict[str, Any]:
        """The conversation with its traces, JSON-ready (the image by name)."""
        return {"image": self.image_name, "turns": [t.to_dict() for t in self.turns]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


@dataclass
class Event:
    """What a stream yields: ``notice`` (text for the user), ``token`` (new answer text), ``done`` (the turn)."""

    kind: str
    text: str = ""
    turn: Optional[Turn] = None
    column: str = ""


def clean_question(text: str) -> str:
    """A question as the LLaVA builder writes it: ``<image>`` marker removed, whitespace normalized (``vli_text``)."""
    return normalize_text(strip_image_token(text))


def format_trace(trace: Dict[str, Any]) -> str:
    """A turn's trace (its dict) as text, through the project's one formatter (:func:`aio.trace.format_trace`)."""
    return _format_trace(AIOTrace.from_dict(trace))


class ChatEngine:
    """Answers questions about an image with one VisLingInstruct model; see the module docstring.

    Args:
        model: A VisLingInstruct model in eval mode.
        vis_processor: Its eval image processor (PIL image -> (3, H, W) tensor).
        history_budget: Most LLM tokens of the prompt (history and question); ``None``: ``qformer.max_txt_len``.
        stream_timeout: Seconds to wait for the next streamed token before giving up.
    """

    def __init__(self, model, vis_processor, history_budget: Optional[int] = None, stream_timeout: float = 600.0):
        self.model = model
        self.vis_processor = vis_processor
        self.history_budget = history_budget or model.cfg.qformer.max_txt_len
        if self.history_budget < 1:
            raise ValueError(f"history budget must be >= 1 LLM token, got {self.history_budget}")
        self.stream_timeout = stream_timeout
        self._pipelines: Dict[str, VisLingInstructPipeline] = {}
        self._lock = threading.Lock()  # one generation at a time on the shared model

    @property
    def default_aio(self) -> str:
        """The AIO mode of a turn that names none: the model config's."""
        return self.model.cfg.aio.mode

    def pipeline(self, row: Row) -> VisLingInstructPipeline:
        """The engine's pipeline for ``row`` (one per row, kept: AIO's rewrite cache serves every turn)."""
        if row.name not in self._pipelines:
            self._pipelines[row.name] = VisLingInstructPipeline(self.model, row)
        return self._pipelines[row.name]

    def row(self, row: Optional[str] = None, aio: Optional[str] = None) -> Row:
        """A row by name, or the model as its config says (CMAA switch, loaded projection) with AIO mode ``aio``."""
        if row:
            return get_row(row)
        aio = aio or "off"
        if aio not in AIO_MODES:
            raise ValueError(f"AIO mode must be one of {', '.join(AIO_MODES)}, got {aio!r}")
        return config_row(self.model.cfg, aio)

    # --------------------------------------------------------------------------------------------- prompt

    def prompt_tokens(self, text: str) -> int:
        """LLM tokens of ``text`` as the LLM reads it (with its bos for Vicuna)."""
        return self.model.adapter.token_counts([text])[0]

    def build_prompt(self, history: Sequence[Tuple[str, str]], instruction: str) -> Tuple[str, int, int, List[str]]:
        """The LLM's text for ``instruction`` after ``history``, oldest turns dropped to fit the budget.

        Returns:
            ``(prompt, turns kept, turns dropped, notes)``.
        """
        history = list(history)
        notes: List[str] = []
        dropped = 0
        prompt = format_llava_instruction(history, instruction)
        while dropped < len(history) and self.prompt_tokens(prompt) > self.history_budget:
            dropped += 1
            prompt = format_llava_instruction(history[dropped:], instruction)
        if dropped:
            notes.append(f"history budget of {self.history_budget} LLM tokens: the oldest {dropped} of "
                         f"{len(history)} earlier turn(s) left out")
        n = self.prompt_tokens(prompt)
        if n > self.history_budget:
            notes.append(f"the question alone is {n} LLM tokens, over the history budget of {self.history_budget}")
        return prompt, len(history) - dropped, dropped, notes

    # ------------------------------------------------------------------------------------------- one turn

    def image_tensor(self, image: Image.Image) -> torch.Tensor:
        """(1, 3, H, W) on the model's device."""
        return self.vis_processor(image.convert("RGB")).unsqueeze(0).to(self.model.device)

    def stream(
        self,
        conversation: Conversation,
        question: str,
        aio: Optional[str] = None,
        decoding: Optional[Decoding] = None,
        row: Optional[str] = None,
        column: str = "",
    ) -> Iterator[Event]:
        """Answer ``question`` in ``conversation``, yielding events; the turn is appended when it is done.

        Args:
            conversation: Holds the image and the earlier turns.
            question: The new question.
            aio: ``off``, ``rewrite`` or ``full`` for the model as its config says (used when ``row`` is not given).
            decoding: Settings of this call (default: :data:`CHAT_DECODING`).
            row: A row of Table 2 (``vanilla``, ``ema``, ``ema_aio``, ...): CMAA, projection and AIO mode.
            column: Copied into the events (which column of a comparison they belong to).

        Raises:
            ValueError: Empty question, no image, unknown AIO mode or row.
        """
        turn_row = self.row(row, aio)
        turn = self._start(conversation, question, turn_row, decoding or CHAT_DECODING)
        pipeline = self.pipeline(turn_row)
        start = time.perf_counter()
        with self._lock:
            prepared = pipeline.prepare({"image": self.image_tensor(conversation.image), "text_input": [turn.question]})
            (trace,) = prepared.traces
            if turn_row.aio != "off":
                yield Event("notice", f"AIO ({turn_row.aio}): answering with {trace.used!r}", column=column)
            turn.trace = trace.to_dict()
            turn.instruction = trace.used
            turn.prompt, turn.history_turns, turn.dropped_turns, notes = self.build_prompt(
                conversation.history(), turn.instruction)
            turn.prompt_tokens = self.prompt_tokens(turn.prompt)
            turn.notes += notes
            for note in notes:
                yield Event("notice", note, column=column)
            for kind, text in self._generate(pipeline, prepared, turn.prompt, Decoding.from_dict(turn.decoding)):
                if kind == "token":
                    yield Event("token", text, column=column)
                else:
                    turn.answer = text
        turn.seconds = round(time.perf_counter() - start, 3)
        conversation.turns.append(turn)
        yield Event("done", turn=turn, column=column)

    def ask(self, conversation: Conversation, question: str, **kwargs) -> Turn:
        """:meth:`stream` to the end; returns the turn."""
        events = list(self.stream(conversation, question, **kwargs))
        return events[-1].turn

    def compare(
        self, conversations: Dict[str, Conversation], question: str, decoding: Optional[Decoding] = None
    ) -> Iterator[Event]:
        """Answer ``question`` in every column of :data:`COLUMNS` (each column keeps its own dialog), in order."""
        unknown = sorted(set(conversations) - set(COLUMNS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; columns: {list(COLUMNS)}")
        for key, conversation in conversations.items():
            yield from self.stream(conversation, question, decoding=decoding, row=COLUMNS[key][1], column=key)

    # ------------------------------------------------------------------------------------------- helpers

    def _start(self, conversation, question, row: Row, decoding: Decoding) -> Turn:
        if conversation.image is None:
            raise ValueError("no image: give the conversation an image first")
        if not isinstance(question, str) or not question.strip():
            raise ValueError("empty message: type a question about the image")
        cleaned = clean_question(question)
        if not cleaned:
            raise ValueError("empty message: the question has no text once the <image> marker is removed")
        return Turn(question=cleaned, row=row.name, aio=row.aio, decoding=decoding.to_dict())

    def _generate(self, pipeline, prepared, prompt: str, decoding: Decoding) -> Iterator[Tuple[str, str]]:
        """Yield ``("token", text)`` while generating, then ``("answer", decoded output of generate)``."""
        if not decoding.streams:
            yield "answer", pipeline.answer(prepared, decoding, prompts=[prompt])[0]
            return
        streamer = pipeline.make_streamer(timeout=self.stream_timeout)
        result: Dict[str, Any] = {}

        def work():
            try:
                result["answer"] = pipeline.answer(prepared, decoding, prompts=[prompt], streamer=streamer)[0]
            except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
                result["error"] = err
                streamer.end()

        worker = threading.Thread(target=work, name="vli-generate", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield "token", text
        finally:
            worker.join()
        if "error" in result:
            raise result["error"]
        yield "answer", result["answer"]


def new_columns(image: Optional[Image.Image] = None, name: str = "") -> Dict[str, Conversation]:
    """One empty conversation per column of :data:`COLUMNS`, all on ``image``."""
    return {key: Conversation(image=image, image_name=name) for key in COLUMNS}


def columns_to_dict(columns: Dict[str, Conversation]) -> Dict[str, Any]:
    """A comparison as JSON-ready data: per column its label, row, AIO mode and conversation."""
    return {
        key: {"label": COLUMNS[key][0], "row": COLUMNS[key][1], "aio": get_row(COLUMNS[key][1]).aio, **conv.to_dict()}
        for key, conv in columns.items()
    }
