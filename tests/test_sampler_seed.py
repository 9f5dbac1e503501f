"""``run.seed`` sets the training data order: LAVIS's runners build PyTorch's ``DistributedSampler`` without a seed
(it shuffles with 0 whatever the run's seed), and ``vli_instruct_training`` points it at ``run.seed`` and the epoch."""

import torch
from lavis.datasets.datasets.dataloader_utils import IterLoader
from torch.utils.data import DataLoader, DistributedSampler

from lavis_vislinginstruct.tasks.instruct_training import _seeded, start_epoch

N = 20


def loader():
    data = list(range(N))
    return IterLoader(DataLoader(data, batch_size=N, sampler=DistributedSampler(data, num_replicas=1, rank=0)))


def expected_order(seed, epoch):
    """DistributedSampler's documented shuffle: ``randperm`` under a generator seeded with seed + epoch."""
    return torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def test_the_order_follows_the_run_seed_and_the_epoch():
    for seed, epoch in ((0, 0), (7, 0), (7, 2), (42, 1)):
        data = loader()
        start_epoch(data, epoch, seed)
        assert next(data).tolist() == expected_order(seed, epoch)
    assert expected_order(7, 0) != expected_order(0, 0)


def test_a_sampler_is_seeded_once_and_none_leaves_it_alone():
    data = loader()
    assert _seeded(data, 0) and not _seeded(data, 7) and _seeded(data, None)
    start_epoch(data, 0, 7)
    assert _seeded(data, 7)
    start_epoch(data, 1)  # no seed: the sampler keeps the one it has
    assert next(data).tolist() == expected_order(7, 1)
