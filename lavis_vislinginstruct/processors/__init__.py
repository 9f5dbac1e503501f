"""Prompt templates and text processors; importing this registers the ``vli_*`` processors with LAVIS."""

from lavis_vislinginstruct.processors import templates, text_processors  # noqa: F401
