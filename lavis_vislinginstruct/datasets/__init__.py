"""Datasets of VisLingInstruct; importing this registers the ``vli_*`` builders with LAVIS."""

from lavis_vislinginstruct.datasets import builders, datasets  # noqa: F401
