"""Inference around the model: the rows of Table 2 (:mod:`.rows`) and the pipeline that runs AIO around the model
(:mod:`.pipeline`)."""
from .pipeline import VisLingInstructPipeline  # noqa: F401
from .rows import ROWS, Row, get_row  # noqa: F401
