"""``vli_instruct_training``: the fine-tuning task of VisLingInstruct (NAACL 2024, section 4.2 and Appendix E).

``BaseTask`` of LAVIS 1.0.2 with its training loop (``_train_inner_loop``, used by ``runner_base`` and
``runner_iter`` alike) restated, because four of its details do not fit this project:

* **Exact resume.** ``train_epoch`` (what ``runner_base`` calls once per epoch) first reseeds ``random``, NumPy and
  torch from ``(run.seed, epoch, rank)`` and points the training loader at ``epoch`` (the distributed sampler's
  seed, ``run.seed``, and epoch, i.e. the shuffle order, and a fresh iterator). LAVIS 1.0.2 does neither: after
  ``run.resume_ckpt_path`` its ``IterLoader`` starts again at sampler epoch 0, and augmentation draws from wherever
  the generators are, and its sampler shuffles with seed 0 whatever ``run.seed`` says. With
  this, a run resumed after epoch ``e`` sees the data order and augmentations of the uninterrupted run, and its
  weights follow it (the optimizer state comes from the checkpoint, the learning rate is a function of the step).

* **The schedule learns the epoch length.** The loop passes its ``iters_per_epoch`` (the data loader's length,
  or ``iters_per_inner_epoch`` under ``runner_iter``) and ``accum_grad_iters`` to a scheduler that has
  ``set_iters_per_epoch`` (``vli_linear_warmup_cosine``), so the learning rate follows Appendix E per update.
* **Gradient accumulation averages.** The backward pass uses ``loss / accum_grad_iters``, as LAVIS main does
  (1.0.2 sums the micro-batch gradients); the logged loss stays the micro-batch loss.
* **It runs on CPU.** 1.0.2 averages the logged meters across processes with ``device="cuda"`` tensors and
  autocasts with ``torch.cuda.amp``; here the meters use the process group's device and autocast follows the batch.

Everything else (``MetricLogger`` output, the ``epoch``/``num_iters_per_epoch``/``iters`` keys added to the samples,
``lr_scheduler.step(cur_epoch, cur_step)`` before each forward, ``GradScaler`` with ``run.amp``, the optimizer
stepping every ``accum_grad_iters`` iterations of an epoch) is LAVIS's loop.

Validation (only when a run names ``valid_splits``) reports the mean loss over the split and
``agg_metrics = exp(-loss)``, which is positive and grows as the loss falls, as LAVIS's best-checkpoint rule needs.
"""

import logging
import math
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
from lavis.common.dist_utils import get_rank, get_world_size, is_dist_avail_and_initialized
from lavis.common.logger import MetricLogger, SmoothedValue
from lavis.common.registry import registry
from lavis.datasets.data_utils import prepare_sample
from lavis.datasets.datasets.dataloader_utils import IterLoader
from lavis.tasks.base_task import BaseTask

logger = logging.getLogger(__name__)


def _group_device() -> torch.device:
    """Device of the tensors the current process group reduces (NCCL: this GPU; gloo: CPU)."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def synchronize_meters(metric_logger: MetricLogger) -> None:
    """Sum every meter's count and total over the processes (LAVIS's version only works with CUDA tensors)."""
    if not is_dist_avail_and_initialized():
        return
    for meter in metric_logger.meters.values():
        totals = torch.tensor([meter.count, meter.total], dtype=torch.float64, device=_group_device())
        dist.all_reduce(totals)
        meter.count, meter.total = int(totals[0].item()), totals[1].item()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (LAVIS's ``setup_seeds`` without the cuDNN flags)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch`` on this rank: distinct per (epoch, rank), the same in a resumed run."""
    return int(seed) + epoch * get_world_size() + get_rank()


def _sampler(loader):
    return getattr(loader._dataloader, "sampler", None)


def _seeded(loader, seed: Optional[int]) -> bool:
    """Whether the loader's sampler already shuffles with ``seed`` (or nothing is to be set)."""
    return seed is None or getattr(_sampler(loader), "seed", seed) == seed


def start_epoch(loader, epoch: int, seed: Optional[int] = None) -> None:
    """Point LAVIS's infinite train loader (``IterLoader``) at ``epoch``: sampler epoch and seed, a fresh iterator.

    ``IterLoader`` moves on to its next epoch only when its iterator runs out, and starts at 0; on GPU its
    ``_dataloader`` is a ``PrefetchLoader``, which passes ``sampler`` through to the ``DataLoader``. PyTorch's
    ``DistributedSampler`` shuffles with its own ``seed`` (0 unless given), which LAVIS's runners never set, so
    ``run.seed`` would not change the data order; ``seed`` sets it.
    """
    loader._epoch = epoch
    sampler = _sampler(loader)
    if seed is not None and isinstance(getattr(sampler, "seed", None), int):
        sampler.seed = seed
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    loader.iter_loader = iter(loader._dataloader)


@registry.register_task("vli_instruct_training")
class InstructTrainingTask(BaseTask):
    """Instruction fine-tuning on ``image`` / ``text_input`` / ``text_output`` samples (LLaVA-Instruct-150K).

    Args:
        seed: ``run.seed``; each epoch starts from a seed derived from it (module docstring).
    """

    def __init__(self, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    @classmethod
    def setup_task(cls, cfg=None, **kwargs) -> "InstructTrainingTask":
        """The task with ``run.seed`` (LAVIS's ``BaseTask.setup_task`` passes nothing)."""
        seed = cfg.run_cfg.get("seed") if cfg is not None else None
        return cls(seed=None if seed is None else int(seed))

    def train_epoch(self, epoch, model, data_loader, *args, **kwargs):
        """Reseed and point the loader at ``epoch`` (so a resumed run repeats the uninterrupted one), then train.

        Called by ``runner_base`` (and ``runner_vli``) once per epoch with LAVIS's ``IterLoader``.
        """
        if self.seed is not None:
            seed_everything(epoch_seed(self.seed, epoch))
        if isinstance(data_loader, IterLoader) and (data_loader.epoch != epoch or not _seeded(data_loader, self.seed)):
            start_epoch(data_loader, epoch, self.seed)
        return super().train_epoch(epoch, model, data_loader, *args, **kwargs)

    def train_step(self, model, samples: Dict[str, Any]) -> torch.Tensor:
        """The model's loss (paper eq. 2) on one micro-batch."""
        return model(samples)["loss"]

    def _train_inner_loop(
        self,
        epoch,
        iters_per_epoch,
        model,
        data_loader,
        optimizer,
        lr_scheduler,
        scaler=None,
        start_iters=None,
        log_freq=50,
        cuda_enabled=False,
        accum_grad_iters=1,
    ):
        """One epoch (``runner_base``) or inner epoch (``runner_iter``) of ``iters_per_epoch`` iterations.

        Returns:
            LAVIS's train stats: ``{"lr": "...", "loss": "..."}``, averaged over iterations and processes.
        """
        use_amp = scaler is not None
        if hasattr(lr_scheduler, "set_iters_per_epoch"):
            lr_scheduler.set_iters_per_epoch(iters_per_epoch, accum_grad_iters)
        if not hasattr(data_loader, "__next__"):
            data_loader = iter(data_loader)

        metric_logger = MetricLogger(delimiter="  ")
        metric_logger.add_meter("lr", SmoothedValue(window_size=1, fmt="{value:.6f}"))
        metric_logger.add_meter("loss", SmoothedValue(window_size=1, fmt="{value:.4f}"))
        # runner_iter schedules the learning rate by inner epoch
        inner_epoch = epoch if start_iters is None else start_iters // iters_per_epoch
        header = f"Train: data epoch: [{epoch}]"
        if start_iters is not None:
            header += f"; inner epoch [{inner_epoch}]"
        logger.info("Start training epoch %s, %d iters per inner epoch.", epoch, iters_per_epoch)

        for i in metric_logger.log_every(range(iters_per_epoch), log_freq, header):
            samples = prepare_sample(next(data_loader), cuda_enabled=cuda_enabled)
            samples.update({"epoch": inner_epoch, "num_iters_per_epoch": iters_per_epoch, "iters": i})
            lr_scheduler.step(cur_epoch=inner_epoch, cur_step=i)

            with torch.autocast("cuda" if cuda_enabled else "cpu", enabled=use_amp):
                loss = self.train_step(model=model, samples=samples)
            # step 1: gradients averaged over the accumulation window
            scaled = loss / accum_grad_iters
            (scaler.scale(scaled) if use_amp else scaled).backward()
            # step 2: update every accum_grad_iters iterations
            if (i + 1) % accum_grad_iters == 0:
                if use_amp:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad()

            metric_logger.update(loss=loss.item())
            metric_logger.update(lr=optimizer.param_groups[0]["lr"])

        synchronize_meters(metric_logger)
        logger.info("Averaged stats: %s", metric_logger.global_avg())
        return {k: "{:.3f}".format(meter.global_avg) for k, meter in metric_logger.meters.items()}

    # ------------------------------------------------------------------------------------------- validation

    def evaluation(self, model, data_loader, cuda_enabled=None):
        """LAVIS's evaluation loop; batches go to the GPU only if the model is there (1.0.2 assumes a GPU)."""
        if cuda_enabled is None:
            cuda_enabled = next(model.parameters()).is_cuda
        return super().evaluation(model, data_loader, cuda_enabled=cuda_enabled)

    def valid_step(self, model, samples: Dict[str, Any]) -> List[Dict[str, float]]:
        """Summed loss and sample count of one validation batch."""
        n = len(samples["text_output"])
        return [{"loss_sum": float(model(samples)["loss"]) * n, "n": n}]

    def after_evaluation(self, val_result, split_name, epoch, **kwargs) -> Dict[str, float]:
        """Mean validation loss over all ranks; ``agg_metrics = exp(-loss)`` ranks checkpoints."""
        totals = torch.tensor(
            [sum(r["loss_sum"] for r in val_result), sum(r["n"] for r in val_result)], dtype=torch.float64
        )
        if is_dist_avail_and_initialized():
            totals = totals.to(_group_device())
            dist.all_reduce(totals)
        loss_sum, n = totals.cpu().tolist()
        loss = loss_sum / max(n, 1.0)
        logger.info("%s (epoch %s): validation loss %.4f over %d samples", split_name, epoch, loss, int(n))
        return {"loss": loss, "agg_metrics": math.exp(-loss)}
