"""``runner_vli``: LAVIS 1.0.2's ``RunnerBase`` made to run on a CPU (gloo). On a GPU, use the stock ``runner_base``.

VisLingInstruct trains and evaluates with LAVIS's stock runner on GPUs: the model defines what its checkpoints hold
(the trainable parameters, :meth:`~lavis_vislinginstruct.models.vislinginstruct.VisLingInstruct.state_dict`) and
how they load, and the ``vli_instruct_training`` task reseeds and sets the sampler's epoch, so ``runner_base``'s own
``_save_checkpoint``/``_load_checkpoint`` give small checkpoints and exact resume. This subclass only removes what
ties 1.0.2's runner to CUDA, for the tests, the demo and laptops (``run.device: cpu``):

* 1.0.2 wraps the model in DDP only when it *moves* it to the device, so a model already on the CPU is never
  wrapped and ``runner.model`` is ``None``; and it passes ``device_ids=[gpu]`` to DDP. Here the model is always
  moved and wrapped once (DDP without ``device_ids``).
* Its loaders put a ``PrefetchLoader`` (a CUDA stream) around every map-style ``DataLoader``; CPU loaders have none.
* ``setup_output_dir`` may run more than once in a process (``train.main`` called twice, as in the tests).

Checkpoints, resume, the training loop and evaluation are the stock ones. On a CUDA device it refuses to start
(:func:`check_device`), so that GPU runs have one code path, LAVIS's.
"""

import logging

import webdataset as wds
from lavis.common.dist_utils import get_rank, get_world_size
from lavis.common.registry import registry
from lavis.datasets.datasets.dataloader_utils import IterLoader, MultiIterLoader
from lavis.runners.runner_base import RunnerBase
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.data.dataset import ChainDataset

logger = logging.getLogger(__name__)


def check_device(device) -> None:
    """``runner_vli`` runs on CPUs only.

    Raises:
        ValueError: If ``device`` is a CUDA device (the stock ``runner_base`` is the GPU runner).
    """
    if str(device).startswith("cuda"):
        raise ValueError(
            "run.runner runner_vli is the CPU runner (gloo); on a GPU use LAVIS's stock run.runner=runner_base"
        )


@registry.register_runner("runner_vli")
class RunnerVli(RunnerBase):
    """``RunnerBase`` on a CPU: DDP without ``device_ids``, loaders without the CUDA prefetcher (module docstring)."""

    def __init__(self, cfg, task, model, datasets, job_id):
        check_device(cfg.run_cfg.device)
        super().__init__(cfg=cfg, task=task, model=model, datasets=datasets, job_id=job_id)

    def setup_output_dir(self):
        """As 1.0.2, but a second runner in the same process may register its own ``output_dir``/``result_dir``."""
        for name in ("output_dir", "result_dir"):
            registry.mapping["paths"].pop(name, None)
        super().setup_output_dir()

    @property
    def model(self):
        """The model on ``run.device``, wrapped in DDP (without ``device_ids``) when distributed."""
        if self._wrapped_model is None:
            if self._model.device != self.device:
                self._model = self._model.to(self.device)
            self._wrapped_model = DDP(self._model) if self.use_distributed else self._model
        return self._wrapped_model

    def create_loaders(self, datasets, num_workers, batch_sizes, is_trains, collate_fns, dataset_ratios=None):
        """1.0.2's loaders without the CUDA-stream prefetcher."""
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
