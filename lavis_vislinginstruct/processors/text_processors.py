"""Text processors registered with LAVIS (``vli_`` prefix).

``vli_text`` replaces LAVIS's ``blip_caption`` for training text: ``blip_caption`` lower-cases, strips punctuation
and cuts to 50 words, which destroys LLaVA-Instruct-150K answers. ``vli_instruction`` formats a benchmark sample
into its initial instruction (VisLingInstruct, NAACL 2024, Table 4) from the template named in the dataset config.
"""

from lavis.common.registry import registry
from lavis.processors.base_processor import BaseProcessor
from omegaconf import DictConfig

from lavis_vislinginstruct.processors.templates import (
    DEFAULT_WRAPPERS,
    format_instruction,
    normalize_text,
    resolve_template,
    wrapper_style,
)


@registry.register_processor("vli_text")
class TextProcessor(BaseProcessor):
    """Whitespace normalization only (see :func:`templates.normalize_text`)."""

    def __call__(self, text: str) -> str:
        """Normalize ``text``."""
        return normalize_text(text)

    @classmethod
    def from_config(cls, cfg: DictConfig = None) -> "TextProcessor":
        """Build from a LAVIS processor config (only ``name`` is read, by LAVIS)."""
        return cls()


@registry.register_processor("vli_instruction")
class InstructionProcessor(BaseProcessor):
    """Format one sample's fields into its initial instruction.

    Args:
        template: A dataset name of Table 4 (``"gqa"``, ``"textvqa"``, ...) or a custom format string with the
            named placeholders of :func:`templates.format_instruction`.
        wrappers: Style of the ranked benchmarks' context and history wrappers: ``official`` (the official
            VisLingInstruct code's, the default) or ``lavis`` (LAVIS main's); see :mod:`templates`.
    """

    def __init__(self, template: str, wrappers: str = DEFAULT_WRAPPERS):
        self.template = resolve_template(template)
        try:
            wrapper_style(wrappers)
        except ValueError as err:
            raise ValueError(f"vli_instruction: {err} (text_processor key 'wrappers')") from None
        self.wrappers = wrappers

    def __call__(self, **fields) -> str:
        """Fill the template; keyword arguments as in :func:`templates.format_instruction`."""
        return format_instruction(self.template, wrappers=self.wrappers, **fields)

    @classmethod
    def from_config(cls, cfg: DictConfig = None) -> "InstructionProcessor":
        """Build from a LAVIS processor config: a required ``template``, an optional ``wrappers``."""
        if cfg is None or cfg.get("template") is None:
            raise ValueError("vli_instruction needs a 'template' (a Table 4 dataset name or a format string)")
        return cls(template=cfg.template, wrappers=cfg.get("wrappers", DEFAULT_WRAPPERS))
