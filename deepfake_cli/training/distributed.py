"""One process or many: device choice, torchrun's process group, DDP, and gathering results.

Launched by torchrun (RANK and WORLD_SIZE in the environment), every process trains on its
shard of each epoch and DistributedDataParallel averages the gradients; rank 0 alone writes
files. Backend: NCCL on CUDA, gloo on CPU. SyncBatchNorm (the authors' setting) is used on
CUDA with more than one process; PyTorch's SyncBatchNorm does not run on CPU, so under gloo
each process keeps its own BatchNorm statistics (DDP copies rank 0's at every forward pass).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from deepfake_cli.device import resolve_device
from deepfake_cli.errors import UsageError


@dataclass(frozen=True)
class Runtime:
    """Where this process runs and which part of the work is its own."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file (weights, state, logs) and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device_option: str) -> Runtime:
    """Join torchrun's process group if launched by it; pick this process's device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Runtime(device=resolve_device(device_option))
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_option, local_rank)
    if device.type == "mps":
        raise UsageError("multi-process training needs CUDA or CPU, not MPS.")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
            **({"device_id": device} if device.type == "cuda" else {}),
        )
    return Runtime(device=device, rank=rank, world_size=world_size, local_rank=local_rank)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, runtime: Runtime) -> nn.Module:
    """The module the training step calls: DDP under torchrun, the model itself otherwise.

    No `find_unused_parameters`: the one parameter set the MAT does not use (the backbone's own
    classifier `_fc`, needed only by stage 1) is frozen before wrapping, and DDP ignores frozen
    parameters. The RIL centres are buffers, kept equal by the loss's own all-reduce.
    """
    if not runtime.distributed:
        return model
    if runtime.device.type == "cuda":
        # Converted in place of the BatchNorm layers; the state-dict keys do not change.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[runtime.device.index])
    return DistributedDataParallel(model)


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


def gather_objects(value, runtime: Runtime) -> list:
    """Every rank's `value`, in rank order (a one-item list without torchrun)."""
    if not runtime.distributed:
        return [value]
    values: list = [None] * runtime.world_size
    dist.all_gather_object(values, value)
    return values


def broadcast_object(value, runtime: Runtime):
    """Rank 0's `value` on every rank."""
    if not runtime.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(
    sums: dict[str, float], count: int, runtime: Runtime
) -> tuple[dict[str, float], int]:
    """Per-sample means of summed values over all ranks' samples, and the total sample count."""
    names = sorted(sums)
    totals = torch.tensor([sums[name] for name in names] + [float(count)], dtype=torch.float64)
    if runtime.distributed:
        # NCCL reduces tensors on the GPU, gloo on the CPU.
        totals = totals.to(runtime.device if runtime.device.type == "cuda" else "cpu")
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        totals = totals.cpu()
    count_all = totals[-1].item()
    means = {name: totals[i].item() / max(count_all, 1.0) for i, name in enumerate(names)}
    return means, int(count_all)


def rank_digests(tensor_groups: dict[str, Iterable[torch.Tensor]], runtime: Runtime) -> dict:
    """Under DDP: every rank's digest of each group of tensors, and whether the ranks agree.

    -> {"<group>_sha256_per_rank": [digest of rank 0, ...], ..., "ranks_in_sync": bool};
    {} without torchrun (nothing is hashed then).
    """
    if not runtime.distributed:
        return {}
    digests = {name: _digest(tensors) for name, tensors in tensor_groups.items()}
    gathered = gather_objects(digests, runtime)
    row = {f"{name}_sha256_per_rank": [g[name] for g in gathered] for name in digests}
    row["ranks_in_sync"] = all(g == gathered[0] for g in gathered)
    return row


def _digest(tensors: Iterable[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
