"""torch's own SyncBatchNorm against labnorm's, on GPUs (CPU processes cannot run it: see labnorm.distributed).

    torchrun --nproc_per_node=N scripts/gpu_ddp_check.py      # N ranks on the GPUs there are

Each rank holds b samples of one float64 batch. Three copies of one small CNN take one SGD step under
DDP: with `torch.nn.SyncBatchNorm` (nccl), with `labnorm.distributed.SyncBatchNorm2d`, and, on rank 0
alone, labnorm's BN with `norm_batch=None` on the whole batch. Rank 0 prints the largest difference of
the outputs, gradients, updated parameters and running statistics, and exits 1 if any passes 1e-9.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from labnorm import distributed
from labnorm.models import build_model

B, LR = 4, 0.5  # samples per GPU, learning rate


def build(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("small_cnn", "bn", width=8).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(device)


def ddp_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict:
    ddp = DistributedDataParallel(model, device_ids=[device.index])
    rank, b = dist.get_rank(), len(x) // dist.get_world_size()
    return distributed.one_step(model, x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b], LR, forward=ddp)


def gather(t: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_ddp_check: no CUDA GPU here; torch's SyncBatchNorm runs on GPUs only", file=sys.stderr)
        return 2
    # One GPU per rank with nccl; more ranks than GPUs share them over gloo (nccl refuses two ranks on one GPU)
    local, world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    gpus = torch.cuda.device_count()
    device = torch.device(f"cuda:{local % gpus}")
    torch.cuda.set_device(device)
    dist.init_process_group("nccl" if world <= gpus else "gloo")
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(world * B, 3, 8, 8, generator=g, dtype=torch.float64) * 2 + 1).to(device)
    y = torch.randint(0, 10, (world * B,), generator=g).to(device)

    torch_sync = ddp_step(nn.SyncBatchNorm.convert_sync_batchnorm(build(device)), x, y, device)
    ours_model = build(device)
    distributed.sync_batch_norm(ours_model)
    ours = ddp_step(ours_model, x, y, device)
    whole = distributed.one_step(build(device), x, y, LR)  # every rank computes it; rank 0 reports
    worst = 0.0
    lines = []
    for name, other in (("torch SyncBatchNorm", torch_sync), ("labnorm SyncBatchNorm2d", ours)):
        diffs = {"outputs": (gather(other["out"]) - whole["out"]).abs().max().item()}
        for part in ("grads", "params", "buffers"):
            diffs[part] = max((other[part][k] - whole[part][k]).abs().max().item() for k in whole[part])
        worst = max(worst, *diffs.values())
        lines.append(f"{name} vs labnorm BN on the whole batch ({world} ranks x {B} samples, float64): "
                     + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    if dist.get_rank() == 0:
        print(torch.cuda.get_device_name(device), f"x {gpus}, {world} ranks ({dist.get_backend()}), "
              f"torch {torch.__version__}")
        print("\n".join(lines))
        print("OK" if worst < 1e-9 else f"FAILED: largest difference {worst:.1e}")
    dist.destroy_process_group()
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
