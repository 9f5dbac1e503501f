"""The Appendix E schedule (``vli_linear_warmup_cosine``) and the training task's loop that drives it."""

import math

import pytest
import torch
from lavis.common.registry import registry

from lavis_vislinginstruct.runners.schedulers import warmup_cosine_lr
from lavis_vislinginstruct.tasks.instruct_training import InstructTrainingTask

# LLaVA-Instruct-150K: 157,712 conversations on 8 GPUs x 4 (Vicuna) -> 4,928 iterations per epoch, 3 epochs.
ITERS, EPOCHS = 4928, 3
TOTAL = ITERS * EPOCHS


def make_scheduler(optimizer, iters_per_epoch=None, accum=1, **overrides):
    """Built the way LAVIS 1.0.2's runner builds every scheduler, from the run config of the Vicuna project."""
    cls = registry.get_lr_scheduler_class("vli_linear_warmup_cosine")
    kwargs = dict(max_epoch=EPOCHS, min_lr=0.0, init_lr=1e-5, decay_rate=None, warmup_start_lr=1e-8, warmup_steps=1000)
    kwargs.update(overrides)
    sched = cls(optimizer=optimizer, **kwargs)
    if iters_per_epoch:
        sched.set_iters_per_epoch(iters_per_epoch, accum)
    return sched


@pytest.fixture
def optimizer():
    weight = torch.nn.Parameter(torch.zeros(2, 2))
    bias = torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW([{"params": [weight]}, {"params": [bias], "weight_decay": 0}], lr=1e-5)


@pytest.mark.parametrize(
    "epoch, step, expected",
    [
        (0, 0, 1e-8),  # warm-up starts at 1e-8
        (0, 500, 1e-8 + (1e-5 - 1e-8) / 2),  # linear
        (0, 999, 1e-8 + (1e-5 - 1e-8) * 999 / 1000),
        (0, 1000, 1e-5),  # peak where the warm-up ends
        (0, 1000 + (TOTAL - 1000) // 2, 5e-6),  # cosine half-way
        (1, 0, 1e-5 * 0.5 * (1 + math.cos(math.pi * (ITERS - 1000) / (TOTAL - 1000)))),  # per step across epochs
        (1, 17, 1e-5 * 0.5 * (1 + math.cos(math.pi * (ITERS + 17 - 1000) / (TOTAL - 1000)))),
        (2, ITERS - 1, 1e-5 * 0.5 * (1 + math.cos(math.pi * (TOTAL - 1 - 1000) / (TOTAL - 1000)))),  # last update
    ],
)
def test_appendix_e_learning_rate_at_chosen_steps(optimizer, epoch, step, expected):
    sched = make_scheduler(optimizer, ITERS)
    lr = sched.step(cur_epoch=epoch, cur_step=step)
    assert lr == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert [g["lr"] for g in optimizer.param_groups] == [lr, lr]


def test_schedule_is_continuous_and_ends_at_min_lr(optimizer):
    sched = make_scheduler(optimizer, ITERS)
    lrs = [sched.lr_at(s) for s in range(TOTAL + 1)]
    assert max(lrs) == pytest.approx(1e-5) and lrs[TOTAL] == pytest.approx(0.0, abs=1e-20)
    assert all(a <= b for a, b in zip(lrs[:1000], lrs[1:1001]))  # rising warm-up
    assert all(a >= b for a, b in zip(lrs[1000:], lrs[1001:]))  # falling cosine
    assert max(abs(a - b) for a, b in zip(lrs, lrs[1:])) < 2e-8  # no jump anywhere


def test_one_update_per_accum_grad_iters(optimizer):
    sched = make_scheduler(optimizer, iters_per_epoch=20, accum=2, warmup_steps=4, max_epoch=2)
    assert (sched.updates_per_epoch, sched.total_steps) == (10, 20)
    assert sched.global_step(0, 3) == 1 and sched.global_step(1, 1) == 10
    assert sched.step(0, 2) == sched.step(0, 3) == warmup_cosine_lr(1, 20, 4, 1e-8, 1e-5, 0.0)


def test_warmup_start_defaults_to_init_lr_as_lavis(optimizer):
    sched = make_scheduler(optimizer, ITERS, warmup_start_lr=-1)
    assert sched.lr_at(0) == pytest.approx(1e-5)


def test_unknown_epoch_length_is_an_error_naming_the_task(optimizer):
    sched = make_scheduler(optimizer)
    with pytest.raises(RuntimeError, match="vli_instruct_training"):
        sched.step(cur_epoch=0, cur_step=0)


class RecordingModel(torch.nn.Module):
    """Loss 0.5 * ||w - x||^2 per batch; records the learning rate in force at every forward."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.optimizer = None
        self.lrs = []

    def forward(self, samples):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        return {"loss": 0.5 * ((self.w - samples["x"]) ** 2).sum()}


class Batches:
    """An infinite loader of ``n`` batches per epoch, as LAVIS's ``IterLoader``."""

    def __init__(self, xs):
        self.xs, self.i = xs, 0

    def __len__(self):
        return len(self.xs)

    def __next__(self):
        x = self.xs[self.i % len(self.xs)]
        self.i += 1
        return {"x": x.clone()}


def run_task(model, loader, epochs, accum=1, iter_based=False, **sched_overrides):
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model.optimizer = optimizer
    sched = make_scheduler(optimizer, max_epoch=epochs, **sched_overrides)
    task = InstructTrainingTask()
    for epoch in range(epochs):
        common = dict(model=model, data_loader=loader, optimizer=optimizer, lr_scheduler=sched, accum_grad_iters=accum)
        if iter_based:  # runner_iter's call: inner epochs of iters_per_inner_epoch iterations
            task.train_iters(epoch=epoch, start_iters=epoch * len(loader), iters_per_inner_epoch=len(loader), **common)
        else:  # runner_base's call
            task.train_epoch(epoch=epoch, **common)
    return sched


@pytest.mark.parametrize("iter_based", [False, True])
def test_task_loop_feeds_the_epoch_length_and_follows_the_schedule(iter_based):
    model = RecordingModel()
    loader = Batches([torch.ones(3)] * 5)
    sched = run_task(model, loader, epochs=3, iter_based=iter_based, warmup_steps=4, init_lr=1e-2, min_lr=1e-4)
    assert sched.iters_per_epoch == 5 and sched.total_steps == 15
    assert model.lrs == pytest.approx([warmup_cosine_lr(s, 15, 4, 1e-8, 1e-2, 1e-4) for s in range(15)])


def test_accumulated_gradients_are_averaged_and_logged_loss_is_the_batch_loss():
    model = RecordingModel()
    xs = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.optimizer = optimizer
    sched = make_scheduler(optimizer, max_epoch=1, warmup_steps=0, init_lr=0.5, min_lr=0.5)
    stats = InstructTrainingTask().train_epoch(
        epoch=0, model=model, data_loader=Batches(xs), optimizer=optimizer, lr_scheduler=sched, accum_grad_iters=2
    )
    # one update with the mean gradient (w - mean x) = -(2, 2, 2) at w = 0 -> w = 0.5 * (2, 2, 2)
    assert torch.allclose(model.w.detach(), torch.tensor([1.0, 1.0, 1.0]))
    # both micro-batch losses are 7.0 at w = 0, not 7.0 / 2
    assert stats["loss"] == "7.000"


def test_validation_reports_mean_loss_and_positive_agg_metric():
    task = InstructTrainingTask()
    out = task.after_evaluation(
        val_result=[{"loss_sum": 6.0, "n": 2}, {"loss_sum": 2.0, "n": 2}], split_name="val", epoch=0
    )
    assert out["loss"] == pytest.approx(2.0) and out["agg_metrics"] == pytest.approx(math.exp(-2.0))
