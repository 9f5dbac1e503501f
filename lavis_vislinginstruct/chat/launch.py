"""What the terminal chat and the web demo share: model flags, the default model, and building the engine.

Default model, when no model flag is given: the demo world's trained model when ``demo_output/model.yaml`` exists
(the model spec ``make demo`` writes), else the tiny random model, announced as random weights.
"""
import argparse
import logging
import os
from dataclasses import dataclass

import torch

from ..models.generation import Decoding
from .engine import CHAT_DECODING, ChatEngine, chat_decoding

logger = logging.getLogger(__name__)

#: The model spec ``make demo`` writes (relative to the working directory).
DEMO_SPEC = os.path.join("demo_output", "model.yaml")
RANDOM_WEIGHTS = (
    "Random weights: no trained checkpoint is loaded, so the answers only show that the plumbing works. "
    "Run `make demo` to train the demo world's model (demo_output/model.yaml), or point --model-spec / --options "
    "at real weights."
)


@dataclass
class LoadedModel:
    """The engine and what the user should be told about its weights."""

    engine: ChatEngine
    name: str
    model_type: str
    spec: str
    random_weights: bool

    @property
    def description(self) -> str:
        where = f" from {self.spec}" if self.spec else ""
        return f"{self.name} ({self.model_type}){where}"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags of every entry point, plus the chat's history budget and decoding defaults."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, help="registered model name (default: vislinginstruct_vicuna)")
    group.add_argument("--model-type", default=None,
                       help="vicuna7b, vicuna13b, flant5xl, flant5xxl, tiny or demo (default: tiny)")
    group.add_argument("--model-spec", default=None,
                       help=f"a model spec file naming a trained model (default: {DEMO_SPEC} when it exists)")
    group.add_argument("--options", nargs="*", default=[],
                       help="model config overrides, key=value (e.g. llm.model=/path/vicuna-7b llm.load_in_8bit=True)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    group.add_argument("--seed", type=int, default=0, help="torch seed before building (random weights repeat)")
    chat = parser.add_argument_group("conversation")
    chat.add_argument("--history-budget", type=int, default=None,
                      help="most LLM tokens of history + question (default: the model's qformer.max_txt_len)")
    chat.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    chat.add_argument("--top-p", type=float, default=CHAT_DECODING.top_p)
    chat.add_argument("--max-new-tokens", type=int, default=CHAT_DECODING.max_new_tokens)
    chat.add_argument("--num-beams", type=int, default=CHAT_DECODING.num_beams, help="more than 1 cannot stream")


def decoding_from_args(args: argparse.Namespace) -> Decoding:
    """The :class:`Decoding` of the command line (ValueError naming a bad value)."""
    return chat_decoding(args.temperature, args.top_p, args.max_new_tokens, args.num_beams)


def choose_model(args: argparse.Namespace) -> tuple:
    """``(name, model_type, spec)`` from the flags, or the default model (module docstring)."""
    if args.model_spec:
        return args.model, args.model_type, args.model_spec
    if args.model or args.model_type:
        return args.model or "vislinginstruct_vicuna", args.model_type or "tiny", None
    if os.path.isfile(DEMO_SPEC):
        return None, None, DEMO_SPEC
    return "vislinginstruct_vicuna", "tiny", None


def has_trained_weights(cfg) -> bool:
    """Whether a model config loads any weights (else everything is randomly initialized)."""
    return bool(cfg.checkpoint or cfg.finetuned or cfg.hf_checkpoint or cfg.llm.model)


def random_weights_notice(cfg) -> str:
    """The warning every command prints when the model ``cfg`` loads no weights, or ``""`` when it loads some."""
    return "" if has_trained_weights(cfg) else f"WARNING: {RANDOM_WEIGHTS}"


def load_model(args: argparse.Namespace) -> LoadedModel:
    """Build the model the flags name and its chat engine.

    Raises:
        ValueError, FileNotFoundError: A bad flag, spec, option or weight file (the message names it).
    """
    from ..models.loading import load_with_options, resolve_model

    if getattr(args, "hf", None):
        return _load_hf(args)
    name, model_type, spec = choose_model(args)
    name, model_type, _ = resolve_model(name, model_type, spec)
    torch.manual_seed(args.seed)
    model, vis, _ = load_with_options(name, model_type, args.options, args.device, spec)
    engine = ChatEngine(model, vis["eval"], history_budget=args.history_budget)
    loaded = LoadedModel(engine, name, model_type, spec or "", not has_trained_weights(model.cfg))
    logger.info("model: %s%s", loaded.description, " (random weights)" if loaded.random_weights else "")
    return loaded


def _load_hf(args: argparse.Namespace) -> LoadedModel:
    """The chat engine over the HF image-text-to-text model in ``args.hf`` (``--hf``)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .hf_engine import HFChatEngine

    if args.model or args.model_type or args.model_spec or args.options:
        raise ValueError("--hf replaces --model, --model-type, --model-spec and --options; give one of them")
    try:
        model = AutoModelForImageTextToText.from_pretrained(args.hf).to(args.device).eval()
        processor = AutoProcessor.from_pretrained(args.hf)
    except OSError as err:
        raise ValueError(f"--hf {args.hf}: not an image-text-to-text model folder ({err})") from err
    engine = HFChatEngine(model, processor, history_budget=args.history_budget)
    return LoadedModel(engine, args.hf, type(model).__name__, "", random_weights=False)


def load_or_exit(args: argparse.Namespace) -> LoadedModel:
    """:func:`load_model`, with a bad flag ending the program with its message."""
    try:
        return load_model(args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}")


def image_or_error(path: str):
    """``(PIL image, None)`` or ``(None, message)`` for a missing or unreadable image."""
    from ..datasets.datasets.base import ImageLoadError, load_image

    try:
        return load_image(os.path.expanduser(path)), None
    except (FileNotFoundError, ImageLoadError) as err:
        return None, str(err)
