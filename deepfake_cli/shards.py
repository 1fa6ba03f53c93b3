"""Splitting work between independent processes: array jobs (`--shard K/N`) and DDP ranks."""

from __future__ import annotations

import hashlib

from deepfake_cli.errors import UsageError


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """`K/N` (1 <= K <= N) -> (K, N); None -> None (no sharding)."""
    if shard is None:
        return None
    try:
        index_text, count_text = shard.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f"--shard {shard!r} is not of the form K/N (for example 1/4).") from None
    if not 1 <= index <= count:
        raise UsageError(f"--shard {shard}: K must be between 1 and N.")
    return index, count


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic slice by a hash of `key` (a path): stable across machines and corpus growth."""
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def rank_positions(num_items: int, rank: int, world_size: int) -> list[int]:
    """This rank's positions, padded like DistributedSampler so every rank gets as many."""
    positions = list(range(num_items))
    if world_size > 1 and num_items:
        padded = -(-num_items // world_size) * world_size
        positions += positions[: padded - num_items]
    return positions[rank::world_size]
