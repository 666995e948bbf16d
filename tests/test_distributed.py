"""Per-worker statistics proven against real data-parallel training.

Four CPU processes, joined by torch.distributed's gloo backend over loopback, are spawned **once** for
this module (`labnorm.distributed.spawn`); in them, real `DistributedDataParallel` takes one SGD step in
float64 on 2 workers and on 4, each with b samples, for a small CNN with every batch-dependent norm of
the registry (a newly registered one is covered without editing this file), with per-worker statistics
and with synchronized ones; then the same four processes train the fast net through
`python -m labnorm run` (the torchrun path), and rank 0 writes the record. Here, one process computes
the same step with `norm_batch=b` (per-worker) or `norm_batch=None` (synchronized) on the concatenated
batch, and every number is compared. One more test launches `torchrun` itself, 2 processes, dry run."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from labnorm import distributed
from labnorm.__main__ import main
from labnorm.experiments import runner
from labnorm.models import build_model
from labnorm.norms import available_norms, make_norm
from labnorm.train.fast import FastRecipe, train_fast

# Every registered norm whose layer takes per-worker statistics (`norm_batch`), as tests/test_norm_batch.py
# finds them; "bn (sync)" is BN with synchronized statistics
GROUPED = [name for name in available_norms() if hasattr(make_norm(name, 8), "norm_batch")]
CASES = GROUPED + ["bn (sync)"]
WORLDS = {2: 3, 4: 2}  # world size -> samples per worker
LR = 0.5
WORLD = max(WORLDS)
REPO = Path(__file__).resolve().parents[1]


def _build(case: str) -> nn.Module:
    """The small CNN of the proofs (float64, parameters nudged off their init; one seed: the same on every rank)."""
    return distributed.small_cnn(case.removesuffix(" (sync)"))


def _batch(world: int) -> tuple[torch.Tensor, torch.Tensor]:
    return distributed.proof_batch(world, WORLDS[world], seed=world)


# The fast net's recipe, small: 2 epochs of 4 steps of 8 images (2 per rank), float32; the whitening bias
# trains for the first epoch only (DDP must then leave its gradient None), the lookahead pulls at step 5.
# A modest learning rate, so that float32 rounding (the ranks sum gradients in another order) stays rounding
RECIPE = FastRecipe(epochs=2, batch_size=8, lr=0.2, bias_lr_scale=4.0, bf16=False, channels_last=False, tta=0,
                    whiten_bias_epochs=1, whiten_images=32)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (32, 3, 32, 32), generator=g, dtype=torch.uint8), torch.randint(0, 10, (32,),
                                                                                                   generator=g)


def _tiny_fast_cifar():
    """fast_cifar with a config small enough for a test (every scale the same): BN and GN, each trained at the
    recipe's learning rate (`@shared-lr`: 4 range-test steps may not leave chance, and then nothing trains)."""
    exp = runner.get("fast_cifar")
    config = dataclasses.replace(exp.config("smoke"), width=0.125, train_images=64, test_images=32, batch_size=16,
                                 range_steps=4, range_batch=16, norms=(), quick_norms=(), shared_lr=("bn", "gn"))
    return dataclasses.replace(exp, configs={s: config for s in exp.configs})


def _worker(rank: int, world: int) -> dict:
    out: dict = {}
    # 1. One DDP step on 2 ranks, then on 4: per-worker statistics for every batch-dependent norm, and BN synced
    for w in WORLDS:
        group = dist.new_group(list(range(w)))  # every rank takes part in making every group
        if rank < w:
            x, y = _batch(w)
            for case in CASES:
                out[(w, case)] = distributed.ddp_one_step(rank, w, functools.partial(_build, case), x, y, LR,
                                                          sync=case.endswith("(sync)"), group=group)
    # 2. torch's SyncBatchNorm on CPU processes: what it says
    net = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    for what, call in (("ddp", lambda: nn.parallel.DistributedDataParallel(net)),
                       ("forward", lambda: net(torch.randn(2, 3, 5, 5)))):
        try:
            call()
            out[f"torch_sync_{what}"] = None
        except ValueError as e:
            out[f"torch_sync_{what}"] = str(e)
    # 3. labnorm's training loop, data-parallel on all ranks (each its slice of every batch)
    distributed.launch_from_env()  # joins the process group this process is in
    torch.manual_seed(0)
    model = build_model("fast_cifar", "bn", width=0.125)
    hist = train_fast(model, *_images(), recipe=RECIPE, seed=0, progress=False)
    out["train"] = {"loss": hist["step_loss"], "state": model.state_dict()}
    # 4. The command line's data-parallel path on all ranks: fast_cifar, tiny, one seed; rank 0 saves
    runner.experiments()["fast_cifar"] = _tiny_fast_cifar()
    out["main"] = main(["run", "fast_cifar", "--scale", "smoke", "--seed", "0", "--batch-stats", "per-worker"])
    out["results"] = os.environ.get("LABNORM_RESULTS")
    return out


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the 4 spawned ranks returned (the processes run once for the whole module)."""
    folder = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABNORM_RESULTS", str(folder))
        out = distributed.spawn(_worker, WORLD)
    return out, folder


def _close(a, b, what, rtol=1e-10, atol=1e-12):
    assert a.keys() == b.keys(), what
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=f"{what}: {k}")


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("case", CASES)
def test_ddp_step_equals_one_process_simulation(ranks, case, world):
    out, _ = ranks
    got = [out[r][(world, case)] for r in range(world)]
    x, y = _batch(world)
    sync = case.endswith("(sync)")
    model = _build(case)
    if not sync:  # per-worker statistics: norm_batch = b on one process
        assert distributed.simulate_workers(model, world, len(x)) == WORLDS[world]
    ref = distributed.one_step(model, x, y, LR)
    # Outputs per sample: rank k's are samples k*b ... k*b + b - 1 of the one-process batch
    torch.testing.assert_close(torch.cat([g["out"] for g in got]), ref["out"], rtol=1e-10, atol=1e-12)
    for r, g in enumerate(got):
        # DDP's averaged gradient, and the parameters after the step, on every rank
        _close(g["grads"], ref["grads"], f"rank {r} gradients", rtol=1e-9)
        _close(g["params"], ref["params"], f"rank {r} parameters", rtol=1e-9)
    if sync:
        # Synchronized statistics: every rank's running statistics are the whole batch's, as one process's
        for r, g in enumerate(got):
            _close(g["buffers"], ref["buffers"], f"rank {r} running statistics")
            _close(g["buffers_next"], ref["buffers"], f"rank {r} running statistics, next forward")
        return
    b = WORLDS[world]
    for r, g in enumerate(got):
        # DDP: rank k's running statistics are those of one copy that saw its own b samples only ...
        alone = distributed.one_step(_build(case), x[r * b:(r + 1) * b], y[r * b:(r + 1) * b], LR)
        _close(g["buffers"], alone["buffers"], f"rank {r} running statistics")
        # ... and at the next forward DDP broadcasts rank 0's to every rank (broadcast_buffers=True)
        _close(g["buffers_next"], got[0]["buffers"], f"rank {r} running statistics after DDP's broadcast")
        # labnorm's simulation: the mean over the groups = the ranks' buffers averaged after the step
        _close(g["buffers_mean"], ref["buffers"], f"rank {r} running statistics averaged")
    # The two rules differ wherever the step moved the running statistics (the groups' differ on random data)
    before = {k: t for k, t in _build(case).named_buffers() if k in ref["buffers"]}
    moved = [k for k in ref["buffers"] if not torch.equal(ref["buffers"][k], before[k])]
    assert all(not torch.allclose(got[0]["buffers"][k], ref["buffers"][k]) for k in moved)


def test_torch_sync_batch_norm_refuses_cpu_processes(ranks):
    out, _ = ranks
    assert out[0]["torch_sync_ddp"] == "SyncBatchNorm layers only work with GPU modules"
    assert out[0]["torch_sync_forward"].startswith("SyncBatchNorm expected input tensor to be on GPU")


def test_training_loop_data_parallel_equals_one_process_with_norm_batch(ranks):
    """`train_fast` on 4 ranks (DDP, each rank its slice, running statistics averaged after each step) is
    `train_fast` on one process with `norm_batch` = the slice, to float32 rounding (relative 1e-5): the losses of every step
    (the whole batch's, on each rank), the final parameters and running statistics."""
    out, _ = ranks
    torch.manual_seed(0)
    model = build_model("fast_cifar", "bn", width=0.125)
    assert distributed.simulate_workers(model, WORLD, RECIPE.batch_size) == 2
    hist = train_fast(model, *_images(), recipe=RECIPE, seed=0, progress=False)
    for r in range(WORLD):
        got = out[r]["train"]
        assert len(got["loss"]) == len(hist["step_loss"]) == 8
        torch.testing.assert_close(torch.tensor(got["loss"]), torch.tensor(hist["step_loss"]), rtol=1e-5, atol=1e-6)
        _close(got["state"], model.state_dict(), f"rank {r} state", rtol=1e-5, atol=1e-6)
    # The whitening bias stopped after the first epoch on every rank as on one process
    assert not model.whiten.bias.requires_grad


def test_data_parallel_run_writes_one_record_with_the_world_size(ranks):
    out, folder = ranks
    assert [o["main"] for o in out] == [0] * WORLD
    # Rank 0 wrote into the results folder; the others into private copies, deleted at their exit
    assert out[0]["results"] == str(folder)
    assert all(o["results"] != str(folder) and not Path(o["results"]).exists() for o in out[1:])
    record = json.loads((folder / "fast_cifar__smoke.json").read_text())
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".json") == ["fast_cifar__smoke.json"]
    prov = record["provenance"]
    assert prov["world_size"] == WORLD and f"x {WORLD} processes (gloo, data-parallel)" in prov["device"]
    for unit, details in record["per_seed"]["0"]["details"]["units"].items():
        assert details["implementation"]["data_parallel"] == {
            "world_size": WORLD, "backend": "gloo", "batch_stats": "per-worker",
            "running_stats": "mean over the ranks after each step"}, unit
        assert 0 < details["test_acc"] <= 1, unit


def test_torchrun_dry_run_on_two_cpu_processes(tmp_path):
    """The documented launch itself: `torchrun` (as `python -m torch.distributed.run`), 2 processes."""
    env = {**os.environ, "LABNORM_RESULTS": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={distributed.free_port()}", "-m", "labnorm", "run", "fast_cifar", "--scale", "smoke",
           "--dry-run", "--dry-batch", "4", "--batch-stats", "sync"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Rank 0 alone prints; nothing is saved
    assert done.stdout.count("dry run of fast_cifar at smoke scale") == 1, done.stdout
    assert "projected full run" in done.stdout
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------- bad input


def test_world_size_that_does_not_divide_the_batch():
    par = distributed.DataParallel(0, 3, torch.device("cpu"), "gloo")
    with pytest.raises(ValueError, match="a world size of 3 does not divide the batch of 4 samples"):
        par.shard(torch.zeros(4, 3))
    assert par.shard(torch.arange(6)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="a world size of 3 does not divide the batch of 8"):
        distributed.simulate_workers(build_model("small_cnn", "bn", width=8), 3, 8)
    with pytest.raises(ValueError, match="batch_stats must be one of"):
        distributed.DataParallel(0, 2, torch.device("cpu"), "gloo", batch_stats="ghost")


def test_model_without_batch_dependent_layer():
    gn = build_model("small_cnn", "gn", width=8)
    assert distributed.batch_dependent_layers(gn) == []
    with pytest.raises(ValueError, match="per-worker statistics were asked for, but set_norm_batch: SmallCNN has no "
                                         "batch-dependent layer"):
        distributed.simulate_workers(gn, 2, 8)
    with pytest.raises(ValueError, match="sync_batch_norm: SmallCNN has no BatchNorm2d"):
        distributed.sync_batch_norm(gn)


def test_sync_batch_norm_outside_a_process_group_is_batch_norm():
    """Swapped in place, same tensors; with no process group it computes labnorm's BN."""
    torch.manual_seed(0)
    model = build_model("small_cnn", "bn", width=8).double()
    ref = build_model("small_cnn", "bn", width=8).double()
    ref.load_state_dict(model.state_dict())
    weights = [m.weight for m in model.modules() if type(m).__name__ == "BatchNorm2d"]
    assert distributed.sync_batch_norm(model) == len(weights) == 3
    synced = [m for m in model.modules() if isinstance(m, distributed.SyncBatchNorm2d)]
    assert [m.weight for m in synced] == weights  # the same Parameter objects: an optimizer keeps working
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


@pytest.fixture
def torchrun_env(monkeypatch):
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


@pytest.mark.skipif(torch.cuda.is_available(), reason="nccl works where there are GPUs")
def test_launch_without_a_working_backend(torchrun_env, capsys):
    # A CPU build of torch has no nccl at all; a CUDA build on a machine without GPUs has no GPU for it
    nccl = r"backend 'nccl' (is not available in this torch build|needs one CUDA GPU per process).*; use gloo"
    with pytest.raises(ValueError, match=nccl):
        distributed.launch_from_env(backend="nccl")
    with pytest.raises(ValueError, match="unknown backend 'tcp'"):
        distributed.launch_from_env(backend="tcp")
    # The command line says the same, before any work, and exits
    with pytest.raises(SystemExit):
        main(["run", "fast_cifar", "--dry-run", "--backend", "nccl"])
    assert re.search(nccl, capsys.readouterr().err.replace("\n", " "))
    torchrun_env.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 but MASTER_PORT not set: launch with torchrun"):
        distributed.launch_from_env()
    assert not dist.is_initialized() and distributed.current() is None


def test_data_parallel_options_need_a_data_parallel_launch(monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.launch_from_env() is None
    with pytest.raises(SystemExit):
        main(["run", "fast_cifar", "--dry-run", "--batch-stats", "sync"])
    assert "--batch-stats and --backend are for a data-parallel launch" in capsys.readouterr().err
