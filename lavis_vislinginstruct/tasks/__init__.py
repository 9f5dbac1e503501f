"""Tasks of VisLingInstruct; importing this registers the ``vli_*`` tasks with LAVIS."""

from lavis_vislinginstruct.tasks import evaluation, instruct_training  # noqa: F401
