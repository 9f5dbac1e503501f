"""Runners and learning-rate schedulers; importing this registers ``runner_vli`` and ``vli_linear_warmup_cosine``."""

from lavis_vislinginstruct.runners import runner_vli, schedulers  # noqa: F401
