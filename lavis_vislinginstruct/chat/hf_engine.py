"""The chat engine over an HF image-text-to-text model (``python -m lavis_vislinginstruct.chat --hf FOLDER``).

:class:`HFChatEngine` is :class:`~.engine.ChatEngine` with a
:class:`~lavis_vislinginstruct.inference.hf_pipeline.VisionLanguagePipeline` per AIO mode in place of
VisLingInstruct's rows: a turn runs AIO on the current question, then the model answers the conversation written
with its own chat template (earlier turns as user / assistant messages, the image in the first user turn, then
``trace.used``). InstructBLIP has no chat template: its conversation is written as VisLingInstruct's chat writes it
(``Q: .. A: ..`` turns, then ``trace.used``) and its Q-Former reads ``trace.used`` alone. The history budget counts
the conversation's tokens (default: the LLM's prompt limit where the model cuts prompts, InstructBLIP's
``max_txt_len``, else 2048) and drops the oldest turns first. Streaming, traces and turn records are the engine's.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

from ..aio.config import AIO_MODES
from ..inference.hf_pipeline import VisionLanguagePipeline
from ..inference.rows import Row
from .engine import ChatEngine

#: Default history budget in tokens of the templated conversation.
HF_HISTORY_BUDGET = 2048


class HFChatEngine(ChatEngine):
    """Answers questions about an image with an HF image-text-to-text model (module docstring).

    Args:
        model: An ``AutoModelForImageTextToText`` model in eval mode.
        processor: Its ``AutoProcessor``.
        history_budget: Most tokens of the conversation (image tokens aside); default in the module docstring.
        stream_timeout: Seconds to wait for the next streamed token before giving up.
    """

    default_aio = "off"

    def __init__(self, model, processor, history_budget: Optional[int] = None, stream_timeout: float = 600.0):
        super().__init__(model, None, history_budget or HF_HISTORY_BUDGET, stream_timeout)
        self.processor = processor
        self._pipelines: Dict[str, VisionLanguagePipeline] = {}  # type: ignore[assignment]
        backend = self.pipeline(self.row(aio="off")).backend  # a processor without a chat template fails here
        if history_budget is None:  # a conversation longer than the model reads would lose its start unreported
            self.history_budget = backend.prompt_limit() or HF_HISTORY_BUDGET

    def pipeline(self, row: Row) -> VisionLanguagePipeline:  # type: ignore[override]
        """The engine's pipeline for ``row``'s AIO mode (kept: AIO's rewrite cache serves every turn)."""
        if row.name not in self._pipelines:
            self._pipelines[row.name] = VisionLanguagePipeline(self.model, self.processor, row.aio)
        return self._pipelines[row.name]

    def row(self, row: Optional[str] = None, aio: Optional[str] = None) -> Row:
        """The model with AIO mode ``aio`` (Table 2's rows are VisLingInstruct's: ``row`` is refused)."""
        if row:
            raise ValueError(f"row={row!r}: rows of Table 2 are VisLingInstruct's; an HF model takes an AIO mode")
        aio = aio or "off"
        if aio not in AIO_MODES:
            raise ValueError(f"AIO mode must be one of {', '.join(AIO_MODES)}, got {aio!r}")
        return Row(f"aio-{aio}", f"AIO {aio}", cmaa=False, projection="base", aio=aio)

    def prompt_tokens(self, text: str) -> int:
        """Tokens of a templated conversation (its image placeholder counts as one)."""
        return len(self.processor.tokenizer(text, add_special_tokens=False).input_ids)

    def build_prompt(self, history: Sequence[Tuple[str, str]], instruction: str) -> Tuple[str, int, int, List[str]]:
        """The conversation in the model's chat template, oldest turns dropped to fit the budget."""
        backend = self.pipeline(self.row(aio="off")).backend
        history = list(history)
        dropped = 0
        prompt = backend.chat_prompt(instruction, True, history)
        while dropped < len(history) and self.prompt_tokens(prompt) > self.history_budget:
            dropped += 1
            prompt = backend.chat_prompt(instruction, True, history[dropped:])
        notes = [f"history budget of {self.history_budget} tokens: the oldest {dropped} of {len(history)} earlier "
                 "turn(s) left out"] if dropped else []
        return prompt, len(history) - dropped, dropped, notes

    def image_tensor(self, image: Image.Image):  # type: ignore[override]
        """The pipeline reads PIL images: the image itself, as a batch of one."""
        return [image.convert("RGB")]
