r"""# What a multi-GPU run computes: per-worker statistics, synchronized statistics, and labnorm's simulation

The small-batch claims of the Group Norm, Weight Standardization and FRN papers are about
**data-parallel** training: $W$ workers (GPUs) each hold a copy of the net and $b$ images of every
batch of $B = Wb$. `torch.nn.parallel.DistributedDataParallel` (DDP) computes, at each step:

1. **forward, per worker**: worker $k$ runs the net on its own samples $B_k$ ($b$ of them). A batch
   norm layer in it takes its statistics from those $b$ samples only — *per-worker* (per-GPU)
   statistics: $\mu_{k,c} = \frac{1}{bHW}\sum_{n \in B_k}\sum_{h,w} x_{n,c,h,w}$, and so on.
2. **backward, averaged**: each worker back-propagates its own loss $L_k$ (the mean over its $b$
   samples), and DDP all-reduces the gradients and divides by $W$:
   $g = \frac{1}{W}\sum_k \nabla_\theta L_k$ — the gradient of the mean loss over all $Wb$ samples.
   Every worker then takes the same optimizer step, so the parameters stay equal.
3. **running statistics, not averaged**: a worker's BN updates its running mean and variance from its
   own $b$ samples, and DDP does not average them. By default (`broadcast_buffers=True`, called
   `forward_sync_buffers` since torch 2.13), at the start of every forward DDP copies **rank 0's**
   buffers to every worker; what a checkpoint saved by
   rank 0 holds is therefore rank 0's running statistics: one worker's $b$ samples per step.

**labnorm's simulation** (`norm_batch=b`, `labnorm._norm_batch`) runs the same step on one process:
the batch of $Wb$ samples is cut into $W$ groups of $b$ consecutive samples, each normalized by its
own statistics, and the loss is the mean over all $Wb$. So the outputs (per sample), the gradient and
the updated parameters are exactly DDP's, worker $k$ being group $k$. Its running statistics take the
**mean over the groups**, $\hat\mu \leftarrow (1 - m)\hat\mu + m \frac{1}{W}\sum_k \mu_k$ — what DDP
holds if the workers' buffers are averaged after each step (`average_buffers`), *not* DDP's default
(rank 0's). Both statements are tested against real DDP on CPU processes (`tests/test_distributed.py`).

**Synchronized statistics** (`torch.nn.SyncBatchNorm`) make the $W$ workers one batch: each BN layer
all-reduces its per-worker sums, so every worker normalizes with the statistics of all $Wb$ samples,

$$\mu_c = \frac{\sum_k \sum_{n \in B_k, h, w} x_{n,c,h,w}}{\sum_k bHW}, \qquad
  \sigma^2_c = \frac{\sum_k \sum_{n \in B_k, h, w} (x_{n,c,h,w} - \mu_c)^2}{\sum_k bHW}$$

and its backward all-reduces the gradients that flow into those sums. That is BN over the whole batch:
labnorm's BN with `norm_batch=None` on the concatenated batch, running statistics included. torch's
`SyncBatchNorm` refuses CPU modules (DDP raises "SyncBatchNorm layers only work with GPU modules"; a
forward outside DDP, "SyncBatchNorm expected input tensor to be on GPU ..."), so `SyncBatchNorm2d` here
computes the same thing with `torch.distributed.all_reduce`, on any device; `scripts/gpu_ddp_check.py`
compares it with torch's own on a GPU.

**Running it.** `spawn(fn, world_size)` runs `fn(rank, world_size)` in $W$ CPU processes joined by
the gloo backend over loopback (the tests and notebook 11 use it). For training,
`torchrun --nproc_per_node=N -m labnorm run fast_cifar --scale gpu --batch-stats per-worker|sync`
launches $N$ processes (one per GPU, or CPU processes with gloo); `launch_from_env` joins them, and
`labnorm.train.fast` then trains data-parallel (`DataParallel`): every rank draws the same batch of $B$
images, as one process would, and keeps its own slice of $B/N$ — so the $N$ ranks together compute
what one process computes with `norm_batch=B/N` (per-worker) or `norm_batch=None` (sync). Rank 0
alone writes the record, with the world size in its provenance.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import inspect
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ._norm_batch import set_norm_batch
from .batch_norm import BatchNorm2d

__all__ = ["spawn", "free_port", "all_reduce_sum", "SyncBatchNorm2d", "sync_batch_norm", "average_buffers",
           "batch_dependent_layers", "simulate_workers", "one_step", "ddp_one_step", "small_cnn", "proof_batch",
           "ddp_vs_simulation", "DataParallel", "launch_from_env", "current", "describe", "BATCH_STATS"]

BATCH_STATS = ("per-worker", "sync")  # what each worker's batch norms normalize with


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank: int, fn: Callable, world_size: int, port: int, folder: str, args: tuple) -> None:
    # One thread per process: W processes share the machine's cores
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=120))
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable, world_size: int, *args: Any) -> list[Any]:
    """Run `fn(rank, world_size, *args)` in `world_size` fresh CPU processes joined by the gloo backend
    over loopback (the default process group is theirs); return what each rank returned, in rank order.

    `fn` must be importable by a fresh interpreter (a module-level function), and its result something
    `torch.save` writes. A rank that raises makes `spawn` raise, with that rank's traceback."""
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        raise RuntimeError("spawn: this torch build has no gloo backend (torch.distributed.is_gloo_available() "
                           "is False); the CPU processes cannot talk to each other")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"spawn: world_size must be a positive int, got {world_size!r}")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_spawned, args=(fn, world_size, free_port(), folder, args), nprocs=world_size, join=True)
        return [torch.load(Path(folder) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


# ---------------------------------------------------------------------------------------------- synchronized BN


class _AllReduceSum(torch.autograd.Function):
    """$y = \\sum_k x_k$ over the ranks of a group; its gradient: the ranks' output gradients, summed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=group)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # $\partial (\sum_j L_j) / \partial x_k = \sum_j \partial L_j / \partial y$: every rank's loss
        # depends on the sum, so the gradient reaching rank k's share is the sum of every rank's
        g = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(g, op=dist.ReduceOp.SUM, group=ctx.group)
        return g, None


def all_reduce_sum(x: torch.Tensor, group=None) -> torch.Tensor:
    """The sum of `x` over the ranks of `group` (default: all), differentiable: back-propagating through
    it sums the ranks' gradients, as `torch.nn.SyncBatchNorm`'s backward does."""
    return _AllReduceSum.apply(x, group)


class SyncBatchNorm2d(BatchNorm2d):
    r"""Batch norm whose training statistics are those of the whole data-parallel batch, on any device.

    Each rank computes its per-channel sums, the ranks all-reduce them, and every rank normalizes with

    $$\mu_c = \frac{\sum_k S_{k,c}}{\sum_k n_k}, \quad S_{k,c} = \sum_{n \in B_k, h, w} x_{n,c,h,w}; \qquad
      \sigma^2_c = \frac{\sum_k Q_{k,c}}{\sum_k n_k}, \quad Q_{k,c} = \sum_{n \in B_k, h, w} (x_{n,c,h,w} - \mu_c)^2$$

    ($n_k = N_k HW$, the rank's values per channel; ranks may hold different batches). Two all-reduces,
    not one of $\sum x$ and $\sum x^2$: $\frac{1}{n}\sum x^2 - \mu^2$ cancels catastrophically in float32
    when $|\mu| \gg \sigma$; the centred sum is the same arithmetic as `labnorm.BatchNorm2d`'s. The
    running statistics take one step with the global mean and the unbiased global variance (count
    $\sum_k n_k$), identical on every rank. Outside a process group, in eval mode, or with `norm_batch`
    set, it is `labnorm.BatchNorm2d`. Same arguments, plus `process_group` (default: all ranks).
    """

    def __init__(self, *args: Any, process_group=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()) or self.norm_batch is not None:
            return super().forward(x)
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm2d: expected input [N, {self.num_features}, H, W], got {tuple(x.shape)}")
        # Statistics in at least float32, as BatchNorm2d
        xs = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        c = self.num_features
        # $[\sum x_c \ (C \text{ values}), n_k]$ of this rank, all-reduced: the whole batch's sums and count
        local = torch.cat([xs.sum((0, 2, 3)), xs.new_full((1,), x.numel() // c)])
        total = all_reduce_sum(local, self.process_group)
        count = total[c].detach()
        if float(count) <= 1:
            raise ValueError(f"SyncBatchNorm2d: expected more than 1 value per channel over all ranks when training, "
                             f"got {int(count)} (this rank's input {tuple(x.shape)})")
        mean = (total[:c] / count).view(1, c, 1, 1)
        centred = xs - mean
        # $\sum_k Q_{k,c}$: the centred sums of squares, all-reduced
        var = (all_reduce_sum((centred * centred).sum((0, 2, 3)), self.process_group) / count).view(1, c, 1, 1)
        if self.track_running_stats:
            self._update_running_stats(mean.flatten().detach(), var.flatten().detach(), int(count))
        inv_std = torch.rsqrt(var + self.eps)
        if not self.affine:
            return (centred * inv_std).to(x.dtype)
        scale = self.weight.to(xs.dtype).view(1, c, 1, 1) * inv_std
        return torch.addcmul(self.bias.to(xs.dtype).view(1, c, 1, 1), centred, scale).to(x.dtype)


def sync_batch_norm(model: nn.Module, process_group=None) -> int:
    """Replace, in place, every `labnorm.BatchNorm2d` and `torch.nn.BatchNorm2d` of `model` (exactly those
    classes) by a `SyncBatchNorm2d` holding the **same** parameter and buffer tensors (an optimizer built
    before keeps working); return how many it replaced.

    Raises:
        ValueError: a model with no such layer (nothing to synchronize).
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) not in (BatchNorm2d, nn.BatchNorm2d):
                continue
            new = SyncBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                  track_running_stats=child.track_running_stats, process_group=process_group)
            for key in ("weight", "bias"):
                if getattr(child, key, None) is not None:
                    setattr(new, key, getattr(child, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                if getattr(child, key, None) is not None:
                    new.register_buffer(key, getattr(child, key))
            new.train(child.training)
            setattr(parent, name, new)
            swapped += 1
    if not swapped:
        raise ValueError(f"sync_batch_norm: {type(model).__name__} has no BatchNorm2d (labnorm's or torch's) to "
                         "synchronize; synchronized statistics are defined here for batch norm only")
    return swapped


def average_buffers(model: nn.Module, group=None) -> int:
    r"""Replace every floating-point buffer of `model` (running statistics) by its mean over the ranks of
    `group`, in place; return how many. After each step, this makes DDP's buffers labnorm's simulation's
    (`norm_batch`): the running statistics are an exponential average, so averaging the ranks' updated
    buffers is the update by the mean of the ranks' statistics. Integer buffers (`num_batches_tracked`)
    are equal on every rank and left alone."""
    bufs = [b for b in model.buffers() if b.is_floating_point()]
    _mean_over_ranks(bufs, group)
    return len(bufs)


@torch.no_grad()
def _mean_over_ranks(tensors: list[torch.Tensor], group=None) -> None:
    if not tensors:
        return
    # One all-reduce of them all, flattened (running statistics: few, small tensors), then copied back
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat /= dist.get_world_size(group)
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.view_as(t))


def batch_dependent_layers(model: nn.Module) -> list[str]:
    """The names of the layers of `model` whose training output depends on the other samples of the batch:
    every layer with a `norm_batch` attribute (labnorm's), `torch.nn` batch norms, Ghost BN."""
    from .ghost_batch_norm import GhostBatchNorm2d

    found, done = [], []
    for name, m in model.named_modules():
        if any(name.startswith(f"{d}.") for d in done):
            continue  # inside a layer already counted (BCN's BN)
        if hasattr(m, "norm_batch") or isinstance(m, (nn.modules.batchnorm._BatchNorm, GhostBatchNorm2d)):
            found.append(name)
            done.append(name)
    return found


def simulate_workers(model: nn.Module, world_size: int, batch_size: int) -> int:
    """Set up `model` to compute on one process what `world_size` data-parallel workers with per-worker
    statistics compute on a batch of `batch_size`: `norm_batch = batch_size / world_size` on every
    batch-dependent layer (`labnorm.set_norm_batch`); return that per-worker batch.

    Raises:
        ValueError: a world size that does not divide the batch; a model with no batch-dependent layer
            (per-worker statistics mean nothing there: its workers compute what one process does).
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"simulate_workers: world_size must be a positive int, got {world_size!r}")
    if batch_size % world_size:
        raise ValueError(f"simulate_workers: a world size of {world_size} does not divide the batch of {batch_size} "
                         "samples; each worker needs the same number of samples")
    try:
        set_norm_batch(model, batch_size // world_size)
    except ValueError as e:
        raise ValueError(f"simulate_workers: per-worker statistics were asked for, but {e}") from None
    return batch_size // world_size


# ---------------------------------------------------------------------------------------------- one step, both ways


def one_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, forward: nn.Module | None = None
             ) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
    """One SGD step of `model` (through `forward`, e.g. its DDP wrapper) on `(x, y)` with the mean
    cross-entropy; the outputs, the gradients the optimizer used, and the parameters and buffers after it."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = (forward or model)(x)
    nn.functional.cross_entropy(out, y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    opt.step()
    return {"out": out.detach(), "grads": grads,
            "params": {n: p.detach().clone() for n, p in model.named_parameters()},
            "buffers": {n: b.detach().clone() for n, b in model.named_buffers() if b.is_floating_point()}}


def ddp_one_step(rank: int, world_size: int, build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                 lr: float, sync: bool = False, group=None) -> dict[str, Any]:
    """Rank `rank`'s part of one DDP step: the model `build()` makes (every rank the same, DDP checks it),
    wrapped in `DistributedDataParallel` (default settings: `broadcast_buffers=True`), on its slice of the
    batch `(x, y)` — samples `rank·b … rank·b + b − 1`, $b = N/W$. With `sync`, its batch norms are first
    made `SyncBatchNorm2d`. Returns `one_step`'s results, plus `buffers_mean` (the buffers averaged over
    the ranks, `average_buffers`) and `buffers_next` (the buffers after the next forward, when DDP has
    broadcast rank 0's)."""
    from torch.nn.parallel import DistributedDataParallel

    model = build()
    if sync:
        sync_batch_norm(model, group)
    ddp = DistributedDataParallel(model, process_group=group)
    b = len(x) // world_size
    part = slice(rank * b, (rank + 1) * b)
    result = one_step(model, x[part], y[part], lr, forward=ddp)
    result["buffers_mean"] = {n: t.clone() for n, t in result["buffers"].items()}
    _mean_over_ranks(list(result["buffers_mean"].values()), group)  # what `average_buffers` does
    # The next forward (eval mode: it reads the running statistics, updates none) starts with DDP's broadcast
    model.eval()
    with torch.no_grad():
        ddp(x[part])
    result["buffers_next"] = {n: t.clone() for n, t in model.named_buffers() if t.is_floating_point()}
    return result


def small_cnn(norm: str, seed: int = 0) -> nn.Module:
    """The model of the proofs: `build_model("small_cnn", norm, width=8)` in float64, its parameters nudged off
    their init (so that nothing is trivially equal), the same for every caller with the same seed."""
    from .models import build_model

    torch.manual_seed(seed)
    model = build_model("small_cnn", norm, width=8).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def proof_batch(world_size: int, per_worker: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A float64 batch of `world_size · per_worker` 8×8 images (mean 1, std 2) and labels."""
    g = torch.Generator().manual_seed(seed)
    n = world_size * per_worker
    return torch.randn(n, 3, 8, 8, generator=g, dtype=torch.float64) * 2 + 1, torch.randint(0, 10, (n,), generator=g)


def _both_steps(rank: int, world_size: int, norm: str, per_worker: int, lr: float) -> dict[str, Any]:
    x, y = proof_batch(world_size, per_worker)
    build = functools.partial(small_cnn, norm)
    return {"per-worker": ddp_one_step(rank, world_size, build, x, y, lr),
            "sync": ddp_one_step(rank, world_size, build, x, y, lr, sync=True)}


def _largest(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(((a[k] - b[k]).abs().max().item() for k in b), default=0.0)


def ddp_vs_simulation(norm: str = "bn", world_size: int = 2, per_worker: int = 4, lr: float = 0.5
                      ) -> list[dict[str, Any]]:
    """One SGD step of `small_cnn(norm)` under real DDP on `world_size` CPU processes (`spawn`), with
    per-worker and with synchronized statistics, against one process with `norm_batch=per_worker` and with
    `norm_batch=None`: one row per comparison, the largest absolute difference of the outputs, the averaged
    gradients, the updated parameters and the running statistics (float64)."""
    ranks = spawn(_both_steps, world_size, norm, per_worker, lr)
    x, y = proof_batch(world_size, per_worker)
    simulated, whole = small_cnn(norm), small_cnn(norm)
    simulate_workers(simulated, world_size, len(x))
    sim, one = one_step(simulated, x, y, lr), one_step(whole, x, y, lr)

    def row(what: str, mode: str, ref: dict[str, Any], buffers: str) -> dict[str, Any]:
        got = [r[mode] for r in ranks]
        return {"DDP run": what, "one process": "norm_batch=%s" % (per_worker if ref is sim else None),
                "outputs": (torch.cat([g["out"] for g in got]) - ref["out"]).abs().max().item(),
                "gradients": max(_largest(g["grads"], ref["grads"]) for g in got),
                "parameters": max(_largest(g["params"], ref["params"]) for g in got),
                "running stats": max(_largest(g[buffers], ref["buffers"]) for g in got)}

    return [row("per-worker BN, rank 0's running stats (DDP's default)", "per-worker", sim, "buffers_next"),
            row("per-worker BN, running stats averaged over ranks", "per-worker", sim, "buffers_mean"),
            row("synchronized BN (all-reduced sums)", "sync", one, "buffers"),
            row("per-worker BN, against whole-batch statistics", "per-worker", one, "buffers_mean")]


# ---------------------------------------------------------------------------------------------- training


@dataclass
class DataParallel:
    """The data-parallel run this process is one rank of (see the module doc): `shard` a batch, `wrap` the
    model, `after_step`, `mean` a logged value. `buffers="mean"` (default) averages the running statistics
    over the ranks after every step (labnorm's simulation); `"rank0"` leaves DDP's default (rank 0's
    broadcast at each forward). `batch_stats`: `"per-worker"` (DDP's default) or `"sync"`."""

    rank: int
    world_size: int
    device: torch.device
    backend: str
    batch_stats: str = "per-worker"
    buffers: str = "mean"

    def __post_init__(self) -> None:
        if self.batch_stats not in BATCH_STATS:
            raise ValueError(f"DataParallel: batch_stats must be one of {BATCH_STATS}, got {self.batch_stats!r}")
        if self.buffers not in ("mean", "rank0"):
            raise ValueError(f"DataParallel: buffers must be 'mean' or 'rank0', got {self.buffers!r}")

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a batch: samples `rank·b … rank·b + b − 1`, $b = N/W$."""
        n = len(t)
        if n % self.world_size:
            raise ValueError(f"DataParallel: a world size of {self.world_size} does not divide the batch of {n} "
                             "samples; use a batch (or --dry-batch) that is a multiple of the number of processes")
        b = n // self.world_size
        return t[self.rank * b:(self.rank + 1) * b]

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` (already on this rank's device) inside DDP, its batch norms synchronized for `"sync"`.
        Parameters that stop requiring gradients during the run (a bias frozen after some epochs) keep
        their gradient `None`: DDP is told to look for unused parameters."""
        from torch.nn.parallel import DistributedDataParallel

        if self.batch_stats == "sync" and batch_dependent_layers(model):
            if self.device.type == "cuda":  # torch's kernel where it runs; labnorm's everywhere else
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            if any(type(m) in (BatchNorm2d, nn.BatchNorm2d) for m in model.modules()):
                sync_batch_norm(model)
            other = [n for n, m in model.named_modules() if n in batch_dependent_layers(model)
                     and not isinstance(m, (SyncBatchNorm2d, nn.SyncBatchNorm))]
            if other:
                raise ValueError(f"DataParallel: synchronized statistics are defined for batch norm only; "
                                 f"{', '.join(other)} would keep per-worker statistics")
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Rank 0's buffers copied at each forward, or not ("mean": averaged after each step instead). torch 2.13
        # renamed the switch `forward_sync_buffers` (it still copies them once, at construction)
        sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
            DistributedDataParallel).parameters else "broadcast_buffers"
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True,
                                       **{sync: self.buffers == "rank0"})

    def after_step(self, model: nn.Module) -> None:
        if self.buffers == "mean":
            average_buffers(model)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of `t` over the ranks (the loss of the whole batch from each rank's loss of its slice)."""
        t = t.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend, "batch_stats": self.batch_stats,
                "running_stats": "mean over the ranks after each step" if self.buffers == "mean" else "rank 0's"}


_ACTIVE: list[DataParallel] = []


def current() -> DataParallel | None:
    """The data-parallel run in progress in this process, or None (one process)."""
    return _ACTIVE[-1] if _ACTIVE else None


def describe() -> dict[str, Any]:
    """`{"data_parallel": ...}` for a run's details in a data-parallel run; `{}` otherwise."""
    par = current()
    return {} if par is None else {"data_parallel": par.describe()}


_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launch_from_env(batch_stats: str | None = None, backend: str | None = None, device: str | None = None,
                    experiment: str | None = None) -> DataParallel | None:
    """Join the data-parallel run that `torchrun` launched this process into (its `RANK`, `WORLD_SIZE`,
    `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), or the process group already set up (`spawn`); None when
    this is a plain single process. `backend`: `"nccl"` (default on CUDA) or `"gloo"` (default on the CPU).
    Each rank uses `cuda:LOCAL_RANK` on a machine with GPUs unless `device` says `"cpu"`. For `experiment`,
    ranks other than 0 keep their records in a private copy of the results folder, deleted at exit, so
    that every rank resumes the same seeds and rank 0 alone writes the record.

    Raises:
        ValueError: a backend this torch cannot run here (nccl without CUDA, an unknown name), a partial
            torchrun environment, `batch_stats` outside a data-parallel launch or not in `BATCH_STATS`.
        RuntimeError: the process group could not be set up (the message names the backend and address).
    """
    if batch_stats is not None and batch_stats not in BATCH_STATS:
        raise ValueError(f"batch_stats must be one of {', '.join(BATCH_STATS)}, got {batch_stats!r}")
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    joined = dist.is_available() and dist.is_initialized()
    if world <= 1 and not joined:
        if batch_stats is not None or backend is not None:
            raise ValueError("--batch-stats and --backend are for a data-parallel launch: "
                             "torchrun --nproc_per_node=N -m labnorm run NAME ... (this is one process)")
        return None
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed: it cannot run data-parallel")
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if not joined:
        missing = [k for k in _ENV if k not in os.environ]
        if missing:
            raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun "
                             "--nproc_per_node=N, which sets them all")
        backend = backend or ("nccl" if use_cuda else "gloo")
        _check_backend(backend, use_cuda)
        local = int(os.environ["LOCAL_RANK"])
        if use_cuda:
            torch.cuda.set_device(local)
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
        except Exception as e:  # noqa: BLE001 — named, with the backend and the address
            raise RuntimeError(f"could not set up the {backend} process group at {os.environ['MASTER_ADDR']}:"
                               f"{os.environ['MASTER_PORT']} (rank {os.environ['RANK']} of {world}): {e}") from e
        atexit.register(_leave)
    else:
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    backend = dist.get_backend()
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    par = DataParallel(dist.get_rank(), dist.get_world_size(), dev, backend, batch_stats or "per-worker")
    if experiment is not None and par.rank != 0:
        _private_results(experiment)
    dist.barrier()  # every rank has read the results folder before rank 0 writes to it
    _ACTIVE.append(par)
    return par


def _check_backend(backend: str, use_cuda: bool) -> None:
    available = {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available(), "mpi": dist.is_mpi_available()}
    if backend not in available:
        raise ValueError(f"unknown backend {backend!r}: use gloo (CPU processes) or nccl (one GPU per process)")
    if not available[backend]:
        raise ValueError(f"backend {backend!r} is not available in this torch build ({torch.__version__}); "
                         + ("use gloo" if backend != "gloo" else "no backend to run CPU processes with"))
    if backend == "nccl" and not use_cuda:
        raise ValueError("backend 'nccl' needs one CUDA GPU per process and none is in use here; use gloo")


def _private_results(experiment: str) -> None:
    from . import results

    src = results.results_dir()
    private = Path(tempfile.mkdtemp(prefix=f"labnorm-rank{dist.get_rank()}-"))
    for f in src.glob(f"{experiment}__*") if src.is_dir() else []:
        if f.is_file():
            shutil.copy2(f, private / f.name)
    os.environ["LABNORM_RESULTS"] = str(private)
    atexit.register(shutil.rmtree, private, ignore_errors=True)


def _leave() -> None:
    with contextlib.suppress(Exception):
        if dist.is_initialized():
            dist.destroy_process_group()
