"""The learning-rate schedule of VisLingInstruct's fine-tuning (NAACL 2024, Appendix E), stepped per update.

Appendix E: a linear warm-up over the first 1K steps from 1e-8 to 1e-5, then a cosine decay to 0, over 3 epochs.
LAVIS 1.0.2's ``linear_warmup_cosine_lr`` warms up per step only inside epoch 0 and then sets one cosine value per
*epoch* (3 distinct learning rates after the warm-up for a 3-epoch run). ``vli_linear_warmup_cosine`` follows the
paper instead: every optimizer update ``s`` of ``T = max_epoch * updates_per_epoch`` gets

* ``s < warmup_steps``: ``warmup_lr + (init_lr - warmup_lr) * s / warmup_steps``;
* afterwards: ``min_lr + (init_lr - min_lr) * (1 + cos(pi * (s - warmup_steps) / (T - warmup_steps))) / 2``,

so the cosine starts at ``init_lr`` where the warm-up ends and reaches ``min_lr`` at the last update (the
convention of HF ``get_cosine_schedule_with_warmup``).

LAVIS's runners build a scheduler from ``run`` config keys that do not include the epoch length, and call
``step(cur_epoch, cur_step)`` with the step inside the epoch. The ``vli_instruct_training`` task therefore calls
:meth:`LinearWarmupCosineStepScheduler.set_iters_per_epoch` with the data loader's length at the start of every
epoch (``runner_base``) or inner epoch (``runner_iter``), which is exactly the ``iters_per_epoch`` LAVIS's training
loop runs. With ``accum_grad_iters = k`` one update spans ``k`` iterations, so ``updates_per_epoch =
iters_per_epoch // k`` (keep ``iters_per_epoch`` a multiple of ``k``: LAVIS 1.0.2 carries the remainder's gradients
into the next epoch).
"""

import logging
import math
from typing import Optional

from lavis.common.registry import registry

logger = logging.getLogger(__name__)


def warmup_cosine_lr(
    step: int, total_steps: int, warmup_steps: int, warmup_start_lr: float, init_lr: float, min_lr: float
) -> float:
    """Learning rate of update ``step`` (0-based) under linear warm-up then cosine decay (see module docstring).

    Args:
        step: Index of the optimizer update.
        total_steps: Number of updates of the whole run; the cosine reaches ``min_lr`` there.
        warmup_steps: Updates of the linear warm-up (0: none).
        warmup_start_lr: Learning rate of update 0 when warming up.
        init_lr: Peak learning rate, reached at the end of the warm-up.
        min_lr: Final learning rate.
    """
    if step < warmup_steps:
        return warmup_start_lr + (init_lr - warmup_start_lr) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@registry.register_lr_scheduler("vli_linear_warmup_cosine")
class LinearWarmupCosineStepScheduler:
    """Per-update linear warm-up + cosine decay over the whole run (``run.lr_sched: vli_linear_warmup_cosine``).

    Constructed by LAVIS's runner from ``run.init_lr``, ``run.min_lr``, ``run.warmup_lr``, ``run.warmup_steps`` and
    ``run.max_epoch``; the epoch length comes from :meth:`set_iters_per_epoch` (see the module docstring).

    Args:
        optimizer: The optimizer whose parameter groups get the learning rate.
        max_epoch: Epochs (inner epochs under ``runner_iter``) of the run.
        min_lr: Final learning rate.
        init_lr: Peak learning rate.
        warmup_steps: Updates of the warm-up.
        warmup_start_lr: First learning rate of the warm-up; negative means ``init_lr`` (as LAVIS).
        iters_per_epoch: Iterations per epoch, if already known.
        accum_grad_iters: Iterations per optimizer update.
        **kwargs: Other keys LAVIS passes to every scheduler (``decay_rate``); ignored.
    """

    def __init__(
        self,
        optimizer,
        max_epoch: int,
        min_lr: float,
        init_lr: float,
        warmup_steps: int = 0,
        warmup_start_lr: float = -1,
        iters_per_epoch: Optional[int] = None,
        accum_grad_iters: int = 1,
        **kwargs,
    ):
        self.optimizer = optimizer
        self.max_epoch = int(max_epoch)
        self.min_lr = float(min_lr)
        self.init_lr = float(init_lr)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_lr = float(warmup_start_lr) if float(warmup_start_lr) >= 0 else self.init_lr
        self.iters_per_epoch: Optional[int] = None
        self.accum_grad_iters = 1
        if iters_per_epoch is not None:
            self.set_iters_per_epoch(iters_per_epoch, accum_grad_iters)

    def set_iters_per_epoch(self, iters_per_epoch: int, accum_grad_iters: int = 1) -> None:
        """Tell the schedule how many iterations an epoch has and how many iterations make one update."""
        iters_per_epoch, accum_grad_iters = int(iters_per_epoch), int(accum_grad_iters)
        if iters_per_epoch < 1 or accum_grad_iters < 1:
            raise ValueError(
                f"iters_per_epoch ({iters_per_epoch}) and accum_grad_iters ({accum_grad_iters}) must be >= 1"
            )
        if self.iters_per_epoch is not None and (iters_per_epoch, accum_grad_iters) != (
            self.iters_per_epoch,
            self.accum_grad_iters,
        ):
            logger.warning(
                "epoch length changed from %d to %d iterations: the rest of the schedule is rescaled",
                self.iters_per_epoch,
                iters_per_epoch,
            )
        if iters_per_epoch % accum_grad_iters:
            logger.warning(
                "%d iterations per epoch is not a multiple of accum_grad_iters=%d", iters_per_epoch, accum_grad_iters
            )
        self.iters_per_epoch, self.accum_grad_iters = iters_per_epoch, accum_grad_iters
        logger.info(
            "lr schedule: %d updates in all (%d epochs x %d), warm-up %d, lr %.3g -> %.3g -> %.3g",
            self.total_steps,
            self.max_epoch,
            self.updates_per_epoch,
            self.warmup_steps,
            self.warmup_start_lr,
            self.init_lr,
            self.min_lr,
        )

    @property
    def updates_per_epoch(self) -> int:
        """Optimizer updates per epoch."""
        self._require_epoch_length()
        return max(1, self.iters_per_epoch // self.accum_grad_iters)

    @property
    def total_steps(self) -> int:
        """Optimizer updates of the whole run."""
        return self.max_epoch * self.updates_per_epoch

    def global_step(self, cur_epoch: int, cur_step: int) -> int:
        """Index of the update that iteration ``cur_step`` of epoch ``cur_epoch`` contributes to."""
        return int(cur_epoch) * self.updates_per_epoch + int(cur_step) // self.accum_grad_iters

    def lr_at(self, step: int) -> float:
        """Learning rate of update ``step``."""
        return warmup_cosine_lr(
            step, self.total_steps, self.warmup_steps, self.warmup_start_lr, self.init_lr, self.min_lr
        )

    def step(self, cur_epoch: int, cur_step: int) -> float:
        """Set (and return) the learning rate for iteration ``cur_step`` of epoch ``cur_epoch`` (LAVIS's call)."""
        lr = self.lr_at(self.global_step(cur_epoch, cur_step))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _require_epoch_length(self) -> None:
        if self.iters_per_epoch is None:
            raise RuntimeError(
                "vli_linear_warmup_cosine does not know the epoch length: use run.task vli_instruct_training (it "
                "passes the data loader's length to the scheduler) or call set_iters_per_epoch() before step()"
            )
