"""Dynamic growth: plain PyTorch loop, scheduler realignment, transformers.Trainer callback."""

from __future__ import annotations

import pytest
import torch
from _toy import MLP, TARGETS, mse
from torch import nn
from transformers import TrainerCallback

from adapters.torch.dynamic import DynamicGrowth, OPFGrowthCallback, extend_scheduler
from adapters.torch.layer import MPOLinear
from adapters.torch.selection import score_modules
from mpo.errors import MPOError


def data(n: int, d: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(6, d, generator=g, dtype=torch.float64), torch.randn(6, generator=g).double())
        for _ in range(n)
    ]


def warmup(step: int) -> float:
    return min(1.0, (step + 1) / 4) * 0.9**step


def weights_in(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for g in optimizer.param_groups for p in g["params"]}


def test_plain_loop_grows_trains_and_follows_schedule() -> None:
    torch.manual_seed(0)
    model = MLP().double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup)
    grower = DynamicGrowth(
        model, TARGETS, n_per_round=1, max_per_group=2, interval=2, shape="opf-svd"
    )
    assert len(grower.groups) == 2 and grower.remaining == [
        f"layers.{i}.{m}" for m in ("up", "down") for i in range(3)
    ]
    history = []
    batches = data(8)
    for step, batch in enumerate(batches, start=1):
        mse(model, batch).backward()
        grower.observe()
        expected = grower.scores() if step % 2 == 0 else None
        opt.step()
        sched.step()
        opt.zero_grad()
        dense = {n: m.weight for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        x = batches[0][0]
        with torch.no_grad():
            before = model(x)
        grown = grower.maybe_grow(opt, sched)
        if grown:
            history.append((step, grown))
            # exact at growth, top score per group, optimizer swapped in the same call
            with torch.no_grad():
                torch.testing.assert_close(model(x), before, rtol=0, atol=1e-12)
            assert expected is not None
            for name in grown:
                group = [n for n in expected if n.endswith(name.rsplit(".", 1)[1])]
                assert expected[name] == max(expected[n] for n in group)
                assert isinstance(model.get_submodule(name), MPOLinear)
                assert id(dense[name]) not in weights_in(opt)
                assert id(dense[name]) not in {id(p) for s in opt.state for p in [s]}
            cores = {id(p) for n in grown for p in model.get_submodule(n).cores}
            assert cores <= weights_in(opt)
        # every group (old and new) follows the schedule from its base lr
        assert len(sched.base_lrs) == len(opt.param_groups) == len(sched.lr_lambdas)
        for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):
            assert base == 1e-2 and group["initial_lr"] == 1e-2
            assert group["lr"] == pytest.approx(1e-2 * warmup(sched.last_epoch), rel=1e-12)
    assert [s for s, _ in history] == [2, 4]
    assert all(len(names) == 2 for _, names in history)  # one per group per round
    assert grower.done and len(grower.selected) == 4 and grower.remaining == []
    # the factors grown at step 2 were trained by steps 3..8 (the released code froze them)
    first = model.get_submodule(history[0][1][0])
    assert all(opt.state[p]["step"] == 6 for p in first.cores)


def test_scores_accumulate_taylor_and_reset() -> None:
    torch.manual_seed(1)
    model = MLP().double()
    grower = DynamicGrowth(model, TARGETS, n_per_round=1, max_per_group=1, interval=3)
    fisher = DynamicGrowth(
        model, TARGETS, n_per_round=1, max_per_group=1, interval=3, method="fisher"
    )
    manual = dict.fromkeys(grower.remaining, 0.0)
    manual_f = dict.fromkeys(grower.remaining, 0.0)
    for batch in data(3):
        model.zero_grad()
        mse(model, batch).backward()
        grower.observe()
        fisher.observe()
        for n in manual:
            p = model.get_submodule(n).weight
            manual[n] += float((p.grad * p.detach()).sum().abs())
            manual_f[n] += float(p.grad.square().mean())
    got, got_f = grower.scores(), fisher.scores()
    for n in manual:
        assert got[n] == pytest.approx(manual[n], rel=1e-12)
        assert got_f[n] == pytest.approx(manual_f[n], rel=1e-12)
    grown = grower.grow()
    assert len(grown) == 2 and grower.scores() == {} and grower.done


def test_grow_with_zeroing_scores_and_no_optimizer() -> None:
    torch.manual_seed(2)
    model = MLP().double()
    with torch.no_grad():
        model.layers[0].up.weight.mul_(5.0)
    grower = DynamicGrowth(model, ["up"], n_per_round=1, max_per_group=3, interval=1)
    scores = score_modules(model, grower.remaining, data(2), mse, "zeroing")
    assert grower.grow(scores=scores) == [max(scores, key=scores.__getitem__)]
    assert len(grower.remaining) == 2
    assert grower.grow(scores={"layers.2.up": 1.0}) == ["layers.2.up"]  # missing -> -inf


def test_wrapped_model_is_looked_through() -> None:
    torch.manual_seed(3)
    model = MLP().double()
    wrapped = nn.DataParallel(model)  # same `.module` convention as DistributedDataParallel
    grower = DynamicGrowth(wrapped, ["up"], n_per_round=1, max_per_group=1, interval=1)
    assert grower.model is model and grower.remaining == [f"layers.{i}.up" for i in range(3)]
    mse(wrapped, data(1)[0]).backward()
    grower.observe()
    scores = grower.scores()
    assert grower.maybe_grow(None) == [max(scores, key=scores.__getitem__)]
    assert not score_modules(wrapped, ["layers.0.down"], data(1), mse).keys() - {"layers.0.down"}


def test_validation() -> None:
    model = MLP()
    kw = {"n_per_round": 1, "max_per_group": 1, "interval": 1}
    with pytest.raises(MPOError, match="zeroing"):
        DynamicGrowth(model, TARGETS, method="zeroing", **kw)
    with pytest.raises(MPOError, match="optimizer"):
        DynamicGrowth(model, TARGETS, optimizer=None, **kw)
    for bad in (0, -1, 1.0, True):
        with pytest.raises(MPOError, match="interval"):
            DynamicGrowth(model, TARGETS, **{**kw, "interval": bad})
    with pytest.raises(MPOError, match="matches no module"):
        DynamicGrowth(model, ["nope"], **kw)


def test_extend_scheduler_scaled_group_and_chainable() -> None:
    w1, w2 = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [w1], "lr": 0.1}, {"params": [w2], "lr": 1.0}])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    sched.step()
    before = list(opt.param_groups)
    new = nn.Parameter(torch.zeros(2))
    opt.param_groups.pop(0)  # a group can also disappear
    opt.add_param_group({"params": [new], "lr": 0.05 * 0.5})  # half of its source's current lr
    extend_scheduler(sched, opt, before, {id(new): 0})
    assert sched.base_lrs == [1.0, 0.05]
    assert opt.param_groups[1]["initial_lr"] == 0.05
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.25, 0.0125])


def test_extend_scheduler_sequential_and_unknown_source() -> None:
    w = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=1.0)
    s1 = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 * (s + 1))
    s2 = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [s1, s2], milestones=[2])
    before = list(opt.param_groups)
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "lr": 0.3})
    extend_scheduler(sched, opt, before, {})
    assert s1.base_lrs == [1.0, 0.3] and len(s1.lr_lambdas) == 2 and s2.base_lrs == [1.0, 0.3]
    opt.step()
    sched.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(0.3 * 0.2)


# --- transformers.Trainer -------------------------------------------------------------------------


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.lrs: list[tuple[int, list[float], list[float]]] = []

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        sched = kwargs["lr_scheduler"]
        opt = kwargs["optimizer"]
        lam = sched.lr_lambdas[0](sched.last_epoch)
        lrs = [g["lr"] for g in opt.param_groups]
        self.lrs.append((state.global_step, lrs, [b * lam for b in sched.base_lrs]))


def test_trainer_callback_tiny_bert(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(cfg)
    g = torch.Generator().manual_seed(0)
    dataset = [
        {"input_ids": torch.randint(0, 40, (8,), generator=g), "labels": int(i % 2)}
        for i in range(32)
    ]
    grower = DynamicGrowth(
        model,
        ["attention.self.query", "attention.output.dense", "output.dense"],
        n_per_round=1,
        max_per_group=2,
        interval=2,
        shape="opf-svd",
    )
    assert len(grower.groups) == 3  # attention.output.dense and output.dense stay apart
    dense = {n: model.get_submodule(n).weight for g in grower.groups.values() for n in g}
    growth, recorder = OPFGrowthCallback(grower), Recorder()
    assert isinstance(growth, OPFGrowthCallback) and isinstance(growth, TrainerCallback)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=8,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        warmup_steps=3,
        lr_scheduler_type="linear",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[growth, recorder])
    trainer.train()
    assert [s for s, _ in growth.history] == [2, 4]
    assert all(len(names) == 3 for _, names in growth.history)
    assert grower.done
    opt = trainer.optimizer
    for _, names in growth.history:
        for name in names:
            layer = model.get_submodule(name)
            assert isinstance(layer, MPOLinear)
            assert all(id(p) in weights_in(opt) and opt.state[p]["step"] > 0 for p in layer.cores)
            assert id(dense[name]) not in weights_in(opt)  # kept alive above: ids unique
    assert sum("mpo_module" in g for g in opt.param_groups) == 6
    # the new groups' lr follows the linear warm-up/decay schedule at every step
    for step, lrs, expected in recorder.lrs:
        assert len(lrs) == len(expected), step
        assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15), step
    assert len(recorder.lrs[-1][1]) == len(opt.param_groups)
    assert recorder.lrs[-1][1][-1] == pytest.approx(recorder.lrs[-1][1][0], rel=1e-12)


def test_importing_dynamic_does_not_import_transformers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, adapters.torch, adapters.torch.dynamic, adapters.torch.selection; "
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
