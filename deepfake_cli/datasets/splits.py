"""Identity groups and the deterministic train/val/test assignment shared by all layouts.

Splitting is by identity group, never by video: a detector that has seen a person's face in
training scores that person's fakes too well, so every video sharing a source identity (a
real video, the fakes made from it, the fakes that used its face) must land in one split.

Groups without an official split are placed by hashing: `sha256(f"{seed}/{group}")`, read as
a number in [0, 1), falls into test below `test_fraction`, into val below `test_fraction +
val_fraction`, and into train otherwise. The result depends on nothing but the seed and the
group's name, so it is identical whatever order files were listed in, on any machine, and a
group keeps its split when other groups are added or removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from deepfake_cli.datasets.common import VideoEntry, natural_sort_key
from deepfake_cli.errors import LayoutError

# Components with more ids than this are named "<smallest id>+<how many others>" instead
# of listing every id, so manifests of Celeb-DF (dozens of linked celebrities) stay readable.
_MAX_LISTED_IDS = 4

# 2**64: the first eight bytes of the digest, read as an integer, divided by this are in [0, 1).
_HASH_RANGE = float(1 << 64)


class IdentityGroups:
    """Union-find over identity ids: ids linked directly or through others share one group.

    A fake `A_B` links target A and source B; linking is transitive, so if A_B and B_C both
    exist then A, B and C end up in one group and therefore one split.
    """

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._names: dict[str, str] | None = None

    def add(self, identity: str) -> None:
        """Register an id that may have no links (an original nobody was swapped with)."""
        if identity not in self._parent:
            self._parent[identity] = identity
            self._names = None

    def link(self, first: str, second: str) -> None:
        """Put `first` and `second` (and everything already linked to either) in one group."""
        self.add(first)
        self.add(second)
        first_root, second_root = self._root(first), self._root(second)
        if first_root != second_root:
            self._parent[second_root] = first_root
            self._names = None

    def __contains__(self, identity: object) -> bool:
        return identity in self._parent

    def name(self, identity: str) -> str:
        """The group's name: its ids sorted and joined with "_" ("000_003"), or for groups of
        more than four ids, "<smallest id>+<count of the others>" ("id0+12")."""
        if self._names is None:
            self._names = self._compute_names()
        return self._names[self._root(identity)]

    def _root(self, identity: str) -> str:
        root = identity
        while self._parent[root] != root:
            root = self._parent[root]
        # Path compression keeps later look-ups short on datasets with thousands of ids.
        while self._parent[identity] != root:
            self._parent[identity], identity = root, self._parent[identity]
        return root

    def _compute_names(self) -> dict[str, str]:
        members_by_root: dict[str, list[str]] = {}
        for identity in self._parent:
            members_by_root.setdefault(self._root(identity), []).append(identity)
        names = {}
        for root, members in members_by_root.items():
            members.sort(key=natural_sort_key)
            if len(members) <= _MAX_LISTED_IDS:
                names[root] = "_".join(members)
            else:
                names[root] = f"{members[0]}+{len(members) - 1}"
        return names


@dataclass(frozen=True)
class SplitPin:
    """An official list puts a group in a split; `reason` names the list, for error messages."""

    group: str
    split: str
    reason: str


def hash_fraction(group: str, seed: int) -> float:
    """Where `group` falls in [0, 1) for `seed`: the first 8 bytes of sha256, big-endian."""
    digest = hashlib.sha256(f"{seed}/{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_RANGE


def hash_split(group: str, *, seed: int, val_fraction: float, test_fraction: float) -> str:
    """The split of a group with no official split (see the module docstring)."""
    position = hash_fraction(group, seed)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def assign_splits(
    entries: Iterable[VideoEntry],
    *,
    pins: Iterable[SplitPin] = (),
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> list[VideoEntry]:
    """Give every entry its group's split: the pinned one if any, else the hashed one.

    A pin applies to its whole group, so an official list that names one video of a group
    moves the group's other videos to that split too. Two pins that disagree about a group
    mean the official lists would put one identity on two sides: that raises LayoutError.
    Callers pass `test_fraction=0` when an official test list exists, so that the videos it
    does not name go to train or val only.
    """
    pinned_by_group: dict[str, SplitPin] = {}
    for pin in pins:
        earlier = pinned_by_group.setdefault(pin.group, pin)
        if earlier.split != pin.split:
            raise LayoutError(
                f"identity group {pin.group} would be on two sides of the split: "
                f"{earlier.reason} puts it in {earlier.split} but {pin.reason} puts it in "
                f"{pin.split}, and videos sharing an identity must stay in one split"
            )
    assigned = []
    for entry in entries:
        pin = pinned_by_group.get(entry.group)
        if pin is not None:
            split = pin.split
        else:
            split = hash_split(
                entry.group, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
            )
        assigned.append(dataclasses.replace(entry, split=split))
    return assigned
