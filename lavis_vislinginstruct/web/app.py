"""The Gradio page of the web demo: one question, three answers side by side (VisLingInstruct, NAACL 2024, Figure 4).

Columns: **Vanilla** (InstructBLIP: its own projection, CMAA off, AIO off), **EMA** (the fine-tuned projection,
CMAA on) and **EMA + AIO** (the same, with the instruction optimized first). One model in memory answers all
three, as the rows ``vanilla``, ``ema`` and ``ema_aio`` (:mod:`lavis_vislinginstruct.inference.rows`); each column


The handlers are plain functions of (inputs, state) so that they are callable without a browser; the page wires
them to components. State per browser session: ``{"key": image fingerprint, "columns": {column: Conversation}}``.
"""
import hashlib
import json
import logging
import os
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..chat.engine import COLUMNS, Conversation, Turn, chat_decoding, columns_to_dict, format_trace, new_columns
from ..models.generation import Decoding
from ..chat.launch import RANDOM_WEIGHTS, LoadedModel

logger = logging.getLogger(__name__)

EMPTY_ANSWER = "(empty answer: the model generated no text)"
PANEL_EMPTY = "The trace of every **EMA + AIO** answer appears here: initial and rewritten instruction, both IAS, " \
              "the comparison prompt, the optimized instruction, the one used and why."
CSS = ("#banner-random {background: #fff3cd; border: 1px solid #e0a800; padding: 8px; border-radius: 6px}\n"
       "#image img {image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain}")  # 32 px scenes


def image_key(image) -> str:
    """A fingerprint of a PIL image (a new image starts new conversations)."""
    return hashlib.sha1(image.convert("RGB").tobytes()).hexdigest()


def messages(conversation: Conversation, pending: Optional[Tuple[str, str]] = None) -> List[Dict[str, Any]]:
    """A column's dialog as Gradio chat messages; ``pending`` is the (question, partial answer) being generated.

    Texts are passed as text parts, which Gradio shows verbatim (a plain string would be dedented line by line).
    """
    pairs = [(t.question, _answer_text(t)) for t in conversation.turns]
    if pending is not None:
        pairs.append((pending[0], pending[1].lstrip() or "…"))  # as the final answer, which is stripped
    out: List[Dict[str, Any]] = []
    for question, answer in pairs:
        out += [{"role": "user", "content": [{"type": "text", "text": question}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return out


def _answer_text(turn: Turn) -> str:
    text = turn.answer.strip() or EMPTY_ANSWER
    return text + "".join(f"\n\n[{note}]" for note in turn.notes)


def aio_panel(columns: Optional[Dict[str, Conversation]]) -> str:
    """Markdown of the EMA + AIO column's traces, one section per turn (the project's trace formatter)."""
    turns = columns["ema_aio"].turns if columns else []
    if not turns:
        return PANEL_EMPTY
    parts = []
    for i, turn in enumerate(turns, start=1):
        parts.append(f"**Turn {i}**: {turn.question}\n\n```text\n{format_trace(turn.trace)}\n```")
    return "\n\n".join(parts)


def conversation_file(columns: Optional[Dict[str, Conversation]]) -> Optional[str]:
    """The comparison with its traces as a JSON file (for the download box), or None before the first turn."""
    if not columns or not any(c.turns for c in columns.values()):
        return None
    folder = tempfile.mkdtemp(prefix="vli_web_")
    path = os.path.join(folder, "vislinginstruct_conversation.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(columns_to_dict(columns), handle, indent=2, ensure_ascii=False)
    return path


class Handlers:
    """What the page's events call; one instance per server, sharing one engine."""

    def __init__(self, loaded: LoadedModel):
        self.engine = loaded.engine

    def outputs(self, columns, pending: Optional[Dict[str, Tuple[str, str]]] = None, status: str = "") -> tuple:
        pending = pending or {}
        chats = [messages(columns[key], pending.get(key)) if columns else [] for key in COLUMNS]
        return (*chats, aio_panel(columns), status)

    def send(self, image, message: str, temperature: float, top_p: float, max_new_tokens: float, beams: float,
             state: Optional[Dict[str, Any]]) -> Iterator[tuple]:
        """Answer ``message`` in the three columns, streaming; yields the page's outputs (see :meth:`outputs`)
        followed by the download file and the new state."""
        import gradio as gr

        if image is None:
            raise gr.Error("Upload an image (or pick an example) first.")
        if not isinstance(message, str) or not message.strip():
            raise gr.Error("Empty message: type a question about the image.")
        try:
            decoding = chat_decoding(float(temperature), float(top_p), int(max_new_tokens), int(beams))
        except ValueError as err:
            raise gr.Error(str(err))
        key = image_key(image)
        if not state or state.get("key") != key:
            state = {"key": key, "columns": new_columns(image, "uploaded image")}
        columns = state["columns"]
        yield from self._run(columns, message, decoding, state)

    def regenerate(self, image, temperature, top_p, max_new_tokens, beams, state) -> Iterator[tuple]:
        """Answer the last question again (with the current sliders), replacing the last answers."""
        import gradio as gr

        if not state or not state["columns"]["vanilla"].turns:
            raise gr.Error("Nothing to regenerate yet: ask a question first.")
        question = state["columns"]["vanilla"].turns[-1].question
        for conv in state["columns"].values():
            conv.turns.pop()
        yield from self.send(image, question, temperature, top_p, max_new_tokens, beams, state)

    def clear(self, state) -> tuple:
        """Forget the dialogs (the image stays until a new one is uploaded)."""
        if state:
            for conv in state["columns"].values():
                conv.reset()
        return (*self.outputs(state["columns"] if state else None), None, state)

    def _run(self, columns, message, decoding, state) -> Iterator[tuple]:
        pending: Dict[str, Tuple[str, str]] = {}
        status = ""
        question = message.strip()
        for event in self.engine.compare(columns, question, decoding):
            label = COLUMNS[event.column][0]
            if event.kind == "notice":
                status = f"{label}: {event.text}"
                pending.setdefault(event.column, (question, ""))
            elif event.kind == "token":
                q, text = pending.get(event.column, (question, ""))
                pending[event.column] = (q, text + event.text)
            else:
                pending.pop(event.column, None)
            yield (*self.outputs(columns, pending, status), None, state)
        yield (*self.outputs(columns, status="done"), conversation_file(columns), state)


def build_page(loaded: LoadedModel, examples: List[str], questions: List[str], decoding: Decoding):
    """The Gradio Blocks of the demo (not launched)."""
    import gradio as gr

    handlers = Handlers(loaded)
    model = loaded.engine.model
    with gr.Blocks(title="VisLingInstruct: Vanilla vs EMA vs EMA + AIO") as page:
        gr.Markdown(f"## VisLingInstruct: Vanilla, EMA and EMA + AIO side by side\nModel: `{loaded.description}`",
                    elem_id="banner")
        if loaded.random_weights:
            gr.Markdown(f"**{RANDOM_WEIGHTS}**", elem_id="banner-random")
        if not model.has_base_projection:
            gr.Markdown("No fine-tuned projection is loaded over an InstructBLIP one: Vanilla and EMA share the "
                        "projection and differ only by CMAA.", elem_id="banner-projection")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image = gr.Image(type="pil", label="Image", sources=["upload"], elem_id="image", height=220)
                if examples:
                    gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Demo-world images")
                temperature = gr.Slider(0.0, 1.5, value=decoding.temperature if decoding.do_sample else 0.0, step=0.05,
                                        label="Temperature (0: greedy)", elem_id="temperature")
                top_p = gr.Slider(0.05, 1.0, value=decoding.top_p, step=0.05, label="Top-p", elem_id="top-p")
                max_new = gr.Slider(1, 256, value=decoding.max_new_tokens, step=1, label="Max new tokens",
                                    elem_id="max-new-tokens")
                beams = gr.Slider(1, 5, value=decoding.num_beams, step=1, label="Beams (more than 1: no streaming)",
                                  elem_id="beams")
            with gr.Column(scale=3):
                with gr.Row():
                    chats = [gr.Chatbot(label=COLUMNS[key][0], elem_id=f"chat-{key}", height=360,
                                        render_markdown=False, feedback_options=None)
                             for key in COLUMNS]
                message = gr.Textbox(label="Question", placeholder="Ask about the image", elem_id="message",
                                     lines=1)
                if questions:
                    gr.Examples(examples=[[q] for q in questions], inputs=[message], label="Demo-world questions")
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    regenerate = gr.Button("Regenerate", elem_id="regenerate")
                    clear = gr.Button("Clear", elem_id="clear")
                status = gr.Markdown("", elem_id="status")
                download = gr.File(label="Conversation with AIO traces (JSON)", elem_id="download")
        with gr.Accordion("AIO panel (EMA + AIO column)", open=True):
            panel = gr.Markdown(PANEL_EMPTY, elem_id="aio-panel")

        outputs = [*chats, panel, status, download, state]
        decoding_inputs = [temperature, top_p, max_new, beams]
        send.click(handlers.send, [image, message, *decoding_inputs, state], outputs, api_name="chat")
        message.submit(handlers.send, [image, message, *decoding_inputs, state], outputs, api_visibility="private")
        regenerate.click(handlers.regenerate, [image, *decoding_inputs, state], outputs, api_name="regenerate")
        clear.click(handlers.clear, [state], outputs, api_name="clear")
        image.change(lambda: (*handlers.outputs(None), None, None), [], outputs, api_visibility="private")
    return page
