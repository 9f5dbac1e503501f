"""The rows of Table 2 (VisLingInstruct, NAACL 2024), defined once.

A row says how one loaded model answers: CMAA on or off, which projection maps the visual tokens into the LLM
(InstructBLIP's, ``base``, or the fine-tuned one), the AIO mode and the order of the scores in AIO's comparison
prompt. ``evaluate.py`` (``run.row``), ``ablation.sh``, the demo, the chat and web columns and the lmms-eval adapter
(``row=``) all take a row by name from :data:`ROWS`; :class:`~.pipeline.VisLingInstructPipeline` runs it.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..aio.config import AIO_MODES, ORDERS
from ..models.vislinginstruct import PROJECTIONS


@dataclass(frozen=True)
class Row:
    """One way of answering with one loaded model.

    Attributes:
        name: The row's name (a key of :data:`ROWS`, or a descriptive name for a combination Table 2 lacks).
        label: How tables print it.
        cmaa: Cross-Modal Alignment Attention on or off.
        projection: ``base`` (InstructBLIP's) or ``finetuned`` (the EMA projection trained with CMAA).
        aio: ``off``, ``rewrite`` or ``full``.
        order: Scores in the comparison prompt: ``ias`` (the paper) or ``shuffled`` (an ablation).
    """

    name: str
    label: str
    cmaa: bool
    projection: str
    aio: str
    order: str = "ias"

    def __post_init__(self):
        for value, allowed, what in ((self.projection, PROJECTIONS, "projection"), (self.aio, AIO_MODES, "aio"),
                                     (self.order, ORDERS, "order")):
            if value not in allowed:
                raise ValueError(f"row {self.name!r}: {what} must be one of {', '.join(allowed)}, got {value!r}")

    def to_dict(self) -> Dict[str, object]:
        return {"row": self.name, "cmaa": self.cmaa, "projection": self.projection, "aio": self.aio,
                "order": self.order}


#: Table 2's rows, in its order, then the shuffled-scores ablation (not in the paper).
ROWS: Dict[str, Row] = {
    row.name: row
    for row in (
        Row("vanilla", "Vanilla", cmaa=False, projection="base", aio="off"),
        Row("ema", "+ EMA", cmaa=True, projection="finetuned", aio="off"),
        Row("ema_rewrite", "+ EMA + Rewriting", cmaa=True, projection="finetuned", aio="rewrite"),
        Row("ema_aio", "+ EMA + AIO (Rewriting + Comparison)", cmaa=True, projection="finetuned", aio="full"),
        Row("ema_aio_shuffled", "+ EMA + AIO, scores in random order", cmaa=True, projection="finetuned",
            aio="full", order="shuffled"),
    )
}
#: The four rows of Table 2 (``ema_aio`` is Table 1's "Ours").
TABLE2: Tuple[str, ...] = ("vanilla", "ema", "ema_rewrite", "ema_aio")


def get_row(name: str) -> Row:
    """The row called ``name``; an unknown name is an error listing the rows."""
    if isinstance(name, Row):
        return name
    if name not in ROWS:
        raise ValueError(f"unknown row {name!r}; rows: {', '.join(ROWS)}")
    return ROWS[name]


def config_row(cfg, aio: str) -> Row:
    """The row of a model as its config says (``cmaa.enabled``, ``aio.order``) with the projection it loaded last and
    AIO mode ``aio``: what the model's own ``generate``, the optimize CLI and the chat answer with."""
    return row_for(cfg.cmaa.enabled, aio, cfg.aio.order, projection="finetuned")


def row_for(cmaa: bool, aio: str, order: str = "ias", projection: Optional[str] = None) -> Row:
    """The row with these switches: a named one when one matches, else one named ``cmaa-<on|off>_aio-<mode>``.

    ``projection`` defaults to the one Table 2 pairs with the CMAA switch (``base`` off, ``finetuned`` on); the order
    matters only with full AIO.
    """
    projection = projection or ("finetuned" if cmaa else "base")
    order = order if aio == "full" else "ias"
    for row in ROWS.values():
        if (row.cmaa, row.projection, row.aio, row.order) == (bool(cmaa), projection, aio, order):
            return row
    name = f"cmaa-{'on' if cmaa else 'off'}_aio-{aio}"
    if (projection == "base") == bool(cmaa):
        name += f"_proj-{projection}"
    if order != "ias":
        name += f"_{order}"
    return Row(name, name, bool(cmaa), projection, aio, order)
