"""Terminal chat with VisLingInstruct about one image: ``python -m lavis_vislinginstruct.chat --image photo.jpg``.

Model flags as the other entry points (``--model``, ``--model-type``, ``--model-spec``, ``--options``,
``--device``); with none, the demo world's trained model (``demo_output/model.yaml``) or the tiny random one.
``--hf FOLDER``: an HF image-text-to-text model (LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, InstructBLIP, ...) with AIO around
it.
Answers stream as they are generated. Commands (type them instead of a question):

    /aio off|rewrite|full   instruction optimization for the next questions (default: the model config's)
    /trace                  the AIO trace of the last answer
    /image PATH             a new image (and a new conversation)
    /reset                  forget the conversation, keep the image
    /save FILE              the conversation with its traces as JSON
    /help                   this list
    /quit                   leave (end of input too)
"""
import argparse
import logging
import sys
from typing import List, Optional, TextIO

from ..aio.config import AIO_MODES
from .engine import Conversation, format_trace
from .launch import RANDOM_WEIGHTS, add_model_arguments, decoding_from_args, image_or_error, load_or_exit

COMMANDS = __doc__[__doc__.index("    /aio"):].rstrip()


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.chat", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="commands:\n" + COMMANDS)
    parser.add_argument("--image", required=True, help="the image to talk about")
    parser.add_argument("--aio", default=None, choices=AIO_MODES, help="AIO mode (default: the model config's)")
    parser.add_argument("--hf", default=None, metavar="FOLDER",
                        help="an HF image-text-to-text model folder (LLaVA, LLaVA-NeXT, Qwen2-VL, InstructBLIP, ...) "
                             "instead of VisLingInstruct; its own chat template writes the conversation (InstructBLIP: "
                             "as VisLingInstruct's chat)")
    add_model_arguments(parser)
    return parser.parse_args(argv)


class Terminal:
    """The read-answer loop over text streams (standard input and output by default)."""

    def __init__(self, engine, conversation: Conversation, aio: str, decoding, out: TextIO):
        self.engine, self.conversation, self.aio, self.decoding, self.out = engine, conversation, aio, decoding, out

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def run(self, lines: TextIO) -> None:
        self.say("Type a question about the image, or /help.")
        while True:
            self.say("USER: ", end="")
            line = lines.readline()
            if not line:
                self.say()
                return
            text = line.strip()
            if not line.endswith("\n"):
                self.say()
            if text.startswith("/"):
                if self.command(text) == "quit":
                    return
            else:
                self.answer(text)

    def answer(self, question: str) -> None:
        if not question:
            self.say("error: empty message: type a question about the image, or /help")
            return
        try:
            self.say("ASSISTANT: ", end="")
            streamed = False
            for event in self.engine.stream(self.conversation, question, aio=self.aio, decoding=self.decoding):
                if event.kind == "notice":
                    self.say(f"[{event.text}]", end="\n" + " " * 11)
                elif event.kind == "token":
                    streamed = True
                    self.say(event.text, end="")
                elif event.kind == "done" and not streamed:
                    self.say(event.turn.answer, end="")
            self.say()
        except ValueError as err:
            self.say(f"\nerror: {err}")

    def command(self, text: str) -> Optional[str]:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        if name in ("/quit", "/exit"):
            return "quit"
        if name == "/help":
            self.say(COMMANDS)
        elif name == "/aio":
            if arg not in AIO_MODES:
                self.say(f"error: /aio takes one of {', '.join(AIO_MODES)}, got {arg!r}")
            else:
                self.aio = arg
                self.say(f"AIO: {arg}")
        elif name == "/trace":
            turns = self.conversation.turns
            self.say(format_trace(turns[-1].trace) if turns else "no answer yet: ask a question first")
        elif name == "/image":
            self.new_image(arg)
        elif name == "/reset":
            self.conversation.reset()
            self.say("conversation reset (same image)")
        elif name == "/save":
            self.save(arg)
        else:
            self.say(f"error: unknown command {name!r}; commands:\n{COMMANDS}")
        return None

    def new_image(self, path: str) -> None:
        if not path:
            self.say("error: /image needs a path")
            return
        image, error = image_or_error(path)
        if error:
            self.say(f"error: {error} (the image stays {self.conversation.image_name})")
            return
        self.conversation.set_image(image, path)
        self.say(f"image: {path} (new conversation)")

    def save(self, path: str) -> None:
        if not path:
            self.say("error: /save needs a file name")
            return
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(self.conversation.to_json() + "\n")
        except OSError as err:
            self.say(f"error: cannot write {path}: {err}")
            return
        self.say(f"saved {len(self.conversation.turns)} turn(s) to {path}")


def main(argv: Optional[List[str]] = None, stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None) -> int:
    """Run the chat; returns the exit status."""
    args = parse_args(argv)
    out = stdout or sys.stdout
    image, error = image_or_error(args.image)
    if error:
        raise SystemExit(f"error: {error}")
    try:
        decoding = decoding_from_args(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    loaded = load_or_exit(args)
    out.write(f"model: {loaded.description}\n")
    if loaded.random_weights:
        out.write(f"WARNING: {RANDOM_WEIGHTS}\n")
    terminal = Terminal(loaded.engine, Conversation(image, args.image), args.aio or loaded.engine.default_aio,
                        decoding, out)
    terminal.run(stdin or sys.stdin)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main())
