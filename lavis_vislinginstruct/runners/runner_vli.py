"""``runner_vli``: LAVIS 1.0.2's ``RunnerBase`` that also trains on CPU and resumes trainable-only checkpoints.

On a GPU the stock ``runner_base`` trains VisLingInstruct unchanged; this subclass exists for what it cannot do:

* **CPU** (gloo process group, ``run.device: cpu``): 1.0.2 wraps the model in DDP only when it *moves* it to the
  device, so a model already on the CPU is never wrapped and ``runner.model`` is ``None``; it passes
  ``device_ids=[gpu]`` to DDP; and its ``PrefetchLoader`` creates a CUDA stream. Here the model is always moved and
  wrapped once (DDP without ``device_ids`` on CPU), and CPU loaders have no prefetcher.
* **Checkpoints hold only the trainable parameters** (``models.checkpoint.trainable_state_dict``; 1.0.2 also keeps
  persistent buffers), and **resume** loads them on top of the model built from the config. 1.0.2's
  ``_load_checkpoint`` calls ``load_state_dict(strict=True)`` and so cannot resume from such a checkpoint.
* **Exact resume**: every epoch starts by reseeding ``random``/``numpy``/``torch`` from ``(seed, epoch, rank)`` and
  by setting the distributed sampler to that epoch; 1.0.2 restarts the sampler at epoch 0 after a resume, and
  augmentation and dropout draw from wherever the RNG happens to be. So a run resumed after epoch ``e`` continues
  with the data order, augmentations and weights of the uninterrupted run.
* ``setup_output_dir`` may run more than once in a process (``train.main`` called twice, as in the tests).

On a GPU everything else (prefetching loaders, DDP on ``run.gpu``) is the stock behaviour.
"""

import logging
import os
import random

import numpy as np
import torch
import webdataset as wds
from lavis.common.dist_utils import download_cached_file, get_rank, get_world_size, main_process
from lavis.common.registry import registry
from lavis.common.utils import is_url
from lavis.datasets.datasets.dataloader_utils import IterLoader, MultiIterLoader
from lavis.runners.runner_base import RunnerBase
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.data.dataset import ChainDataset

from ..models.checkpoint import load_state_dict_checked, trainable_state_dict

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (LAVIS's ``setup_seeds`` without the cuDNN flags)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@registry.register_runner("runner_vli")
class RunnerVli(RunnerBase):
    """``RunnerBase`` for CPU and GPU with trainable-only checkpoints and exact resume (module docstring)."""

    def setup_output_dir(self):
        """As 1.0.2, but a second runner in the same process may register its own ``output_dir``/``result_dir``."""
        for name in ("output_dir", "result_dir"):
            registry.mapping["paths"].pop(name, None)
        super().setup_output_dir()

    @property
    def model(self):
        """The model on ``run.device``, wrapped in DDP (without ``device_ids`` on CPU) when distributed."""
        if self._wrapped_model is None:
            if self._model.device != self.device:
                self._model = self._model.to(self.device)
            if self.use_distributed:
                device_ids = [self.config.run_cfg.gpu] if self.cuda_enabled else None
                self._wrapped_model = DDP(self._model, device_ids=device_ids)
            else:
                self._wrapped_model = self._model
        return self._wrapped_model

    # --------------------------------------------------------------------------------------------- training

    def train_epoch(self, epoch):
        """Reseed and align the sampler with ``epoch`` (so resumed runs repeat the uninterrupted one), then train."""
        seed_everything(int(self.config.run_cfg.seed) + epoch * get_world_size() + get_rank())
        loader = self.train_loader
        if isinstance(loader, IterLoader) and loader.epoch != epoch:
            _start_epoch(loader, epoch)
        return super().train_epoch(epoch)

    def create_loaders(self, datasets, num_workers, batch_sizes, is_trains, collate_fns, dataset_ratios=None):
        """1.0.2's loaders on GPU; on CPU the same loaders without the CUDA-stream prefetcher."""
        if self.cuda_enabled:
            return super().create_loaders(datasets, num_workers, batch_sizes, is_trains, collate_fns, dataset_ratios)
        loaders = []
        for dataset, bsz, is_train, collate_fn in zip(datasets, batch_sizes, is_trains, collate_fns):
            if isinstance(dataset, (list, tuple)):
                parts = [self._cpu_loader(d, num_workers, bsz, is_train, collate_fn[i]) for i, d in enumerate(dataset)]
                loaders.append(MultiIterLoader(loaders=parts, ratios=dataset_ratios))
            else:
                loaders.append(self._cpu_loader(dataset, num_workers, bsz, is_train, collate_fn))
        return loaders

    def _cpu_loader(self, dataset, num_workers, batch_size, is_train, collate_fn):
        if isinstance(dataset, (ChainDataset, wds.DataPipeline)):
            return iter(DataLoader(dataset, batch_size=batch_size, num_workers=num_workers))
        sampler = None
        if self.use_distributed and (is_train or self.use_dist_eval_sampler):
            sampler = DistributedSampler(dataset, shuffle=is_train, num_replicas=get_world_size(), rank=get_rank())
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            sampler=sampler,
            shuffle=sampler is None and is_train,
            collate_fn=collate_fn,
            drop_last=is_train,
        )
        return IterLoader(loader, use_distributed=self.use_distributed) if is_train else loader

    # ------------------------------------------------------------------------------------------ checkpoints

    @main_process
    def _save_checkpoint(self, cur_epoch, is_best=False):
        """Save the trainable parameters, optimizer, scaler, config and epoch (``checkpoint_{epoch|best}.pth``)."""
        save_obj = {
            "model": trainable_state_dict(self.unwrap_dist_model(self.model)),
            "optimizer": self.optimizer.state_dict(),
            "config": self.config.to_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": cur_epoch,
        }
        save_to = os.path.join(self.output_dir, "checkpoint_{}.pth".format("best" if is_best else cur_epoch))
        logger.info("Saving checkpoint at epoch %s to %s.", cur_epoch, save_to)
        torch.save(save_obj, save_to)

    def _load_checkpoint(self, url_or_filename):
        """Resume: trainable weights on top of the configured model, optimizer, scaler; continue after its epoch.

        Raises:
            FileNotFoundError: If the checkpoint does not exist.
            KeyError: If it lacks a trainable parameter of the model or holds keys the model does not have.
        """
        path = download_cached_file(url_or_filename, check_hash=False) if is_url(url_or_filename) else url_or_filename
        if not os.path.isfile(path):
            raise FileNotFoundError(f"resume_ckpt_path {url_or_filename} not found")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model = self.unwrap_dist_model(self.model)
        state = checkpoint["model"]
        absent = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in state)
        if absent:
            raise KeyError(f"{path} lacks trainable parameters of this model: {', '.join(absent[:10])}")
        load_state_dict_checked(model, state, path, expected_missing=[""])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.start_epoch = checkpoint["epoch"] + 1
        logger.info("Resumed from %s: training continues at epoch %d", url_or_filename, self.start_epoch)


def _start_epoch(loader: IterLoader, epoch: int) -> None:
    """Point LAVIS's infinite train loader at ``epoch``: sampler epoch (shuffle order) and a fresh iterator."""
    loader._epoch = epoch
    sampler = getattr(loader._dataloader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    loader.iter_loader = iter(loader._dataloader)
