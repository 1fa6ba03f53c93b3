"""Dataset layouts: tiny look-alike trees of zero-byte videos, no decoding needed."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from deepfake_cli.datasets import LAYOUTS, VideoEntry, detect_layout, list_videos
from deepfake_cli.datasets.splits import IdentityGroups, hash_fraction, hash_split
from deepfake_cli.errors import LayoutError, UsageError

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")


def touch_all(root: Path, relative_paths: list[str], *, shuffle_seed: int | None = None) -> None:
    """Create zero-byte files (in a shuffled order when asked: creation order must not matter)."""
    ordered = list(relative_paths)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(ordered)
    for relative_path in ordered:
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def assert_identity_invariants(entries: list[VideoEntry]) -> None:
    """No group on two sides; every fake shares its source's group and split."""
    splits_by_group: dict[str, set[str]] = {}
    for entry in entries:
        splits_by_group.setdefault(entry.group, set()).add(entry.split)
    two_sided = {group: splits for group, splits in splits_by_group.items() if len(splits) > 1}
    assert not two_sided
    by_path = {entry.relative_path: entry for entry in entries}
    for entry in entries:
        assert entry.split in ("train", "val", "test")
        assert entry.video_path.is_absolute()
        assert entry.video_path.as_posix().endswith(entry.relative_path)
        if entry.source_relative_path is not None:
            source = by_path[entry.source_relative_path]
            assert entry.label == 1 and source.label == 0
            assert (source.group, source.split) == (entry.group, entry.split)
    assert [entry.relative_path for entry in entries] == sorted(by_path)
    assert len({entry.video_id for entry in entries}) == len(entries)


def portable(entries: list[VideoEntry]) -> list[tuple]:
    """Everything but the absolute path, to compare listings of trees in different folders."""
    return [
        (
            entry.relative_path,
            entry.video_id,
            entry.label,
            entry.method,
            entry.compression,
            entry.split,
            entry.group,
            entry.source_relative_path,
        )
        for entry in entries
    ]


# FaceForensics++ ---------------------------------------------------------------------------

FFPP_PAIRS = [("000", "003"), ("001", "870"), ("002", "006"), ("004", "982"), ("005", "010")]
FFPP_LONERS = ["007"]  # An original with no fake: its own group.


def ffpp_paths(level_folder: str = "c23", methods: tuple[str, ...] = FFPP_METHODS) -> list[str]:
    paths = []
    for first_id, second_id in FFPP_PAIRS:
        for identity in (first_id, second_id):
            paths.append(f"original_sequences/youtube/{level_folder}/videos/{identity}.mp4")
        for method in methods:
            for target, source in ((first_id, second_id), (second_id, first_id)):
                paths.append(
                    f"manipulated_sequences/{method}/{level_folder}/videos/{target}_{source}.mp4"
                )
    for identity in FFPP_LONERS:
        paths.append(f"original_sequences/youtube/{level_folder}/videos/{identity}.mp4")
    return paths


def dfd_paths(level_folder: str = "c23") -> list[str]:
    return [
        f"original_sequences/actors/{level_folder}/videos/01__kitchen_pan.mp4",
        f"original_sequences/actors/{level_folder}/videos/02__walking_outside.mp4",
        f"original_sequences/actors/{level_folder}/videos/05__talking_angry.mp4",
        f"manipulated_sequences/DeepFakeDetection/{level_folder}/videos/"
        "01_02__kitchen_pan__YVGY8LOK.mp4",
        # Target scene without an original on disk: no source.
        f"manipulated_sequences/DeepFakeDetection/{level_folder}/videos/"
        "02_01__hugging_happy__ZK95PQDE.mp4",
    ]


@pytest.fixture
def ffpp_root(tmp_path: Path) -> Path:
    root = tmp_path / "ffpp"
    touch_all(root, ffpp_paths("c23") + ffpp_paths("c40") + dfd_paths("c23"))
    # Masks are not videos of the dataset.
    touch_all(root, ["manipulated_sequences/Deepfakes/masks/videos/000_003.mp4"])
    return root


def write_official_splits(splits_dir: Path) -> None:
    splits_dir.mkdir(parents=True, exist_ok=True)
    pairs = [list(pair) for pair in FFPP_PAIRS]
    (splits_dir / "train.json").write_text(json.dumps(pairs[:3]))
    (splits_dir / "val.json").write_text(json.dumps(pairs[3:4]))
    (splits_dir / "test.json").write_text(json.dumps(pairs[4:]))


def test_ffpp_labels_methods_and_sources(ffpp_root: Path) -> None:
    entries = list_videos(ffpp_root)
    assert detect_layout(ffpp_root) == "ffpp"
    assert {entry.compression for entry in entries} == {"c23"}
    youtube_fakes = len(FFPP_PAIRS) * 2 * len(FFPP_METHODS)
    youtube_reals = len(FFPP_PAIRS) * 2 + len(FFPP_LONERS)
    assert len(entries) == youtube_fakes + youtube_reals + 5
    by_id = {entry.video_id: entry for entry in entries}

    fake = by_id["ffpp/Deepfakes/000_003"]
    assert (fake.label, fake.method) == (1, "Deepfakes")
    assert fake.relative_path == "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4"
    assert fake.source_relative_path == "original_sequences/youtube/c23/videos/000.mp4"
    assert by_id["ffpp/FaceShifter/003_000"].source_relative_path.endswith("/003.mp4")
    real = by_id["ffpp/youtube/000"]
    assert (real.label, real.method, real.source_relative_path) == (0, "real", None)
    assert real.group == fake.group == "ffpp/000_003"
    assert by_id["ffpp/youtube/007"].group == "ffpp/007"

    dfd_fake = by_id["ffpp/DeepFakeDetection/01_02__kitchen_pan__YVGY8LOK"]
    assert (dfd_fake.label, dfd_fake.method) == (1, "DeepFakeDetection")
    assert (
        dfd_fake.source_relative_path == "original_sequences/actors/c23/videos/01__kitchen_pan.mp4"
    )
    assert (
        by_id["ffpp/DeepFakeDetection/02_01__hugging_happy__ZK95PQDE"].source_relative_path is None
    )
    assert by_id["ffpp/actors/01__kitchen_pan"].group == dfd_fake.group == "ffpp/actors/01_02"
    assert by_id["ffpp/actors/05__talking_angry"].group == "ffpp/actors/05"
    assert_identity_invariants(entries)


def test_ffpp_compression_filter_and_synonyms(ffpp_root: Path, tmp_path: Path) -> None:
    c40_entries = list_videos(ffpp_root, compression="c40")
    assert {entry.compression for entry in c40_entries} == {"c40"}
    assert all("/c40/" in entry.relative_path for entry in c40_entries)
    # DFD was only created at c23.
    assert not any(entry.method == "DeepFakeDetection" for entry in c40_entries)

    raw_root = tmp_path / "raw_as_c0"
    touch_all(raw_root, ffpp_paths("c0", methods=("Deepfakes",)))
    for spelling in ("raw", "c0", "RAW"):
        raw_entries = list_videos(raw_root, compression=spelling)
        assert {entry.compression for entry in raw_entries} == {"raw"}
        assert len(raw_entries) == len(FFPP_PAIRS) * 4 + len(FFPP_LONERS)


def test_ffpp_missing_compression_names_the_levels_present(ffpp_root: Path) -> None:
    with pytest.raises(LayoutError, match=r"compression raw.*found levels: c23, c40"):
        list_videos(ffpp_root, compression="raw")
    with pytest.raises(UsageError, match="expected c23, c40 or raw"):
        list_videos(ffpp_root, compression="c50")


def test_ffpp_official_splits(ffpp_root: Path, tmp_path: Path) -> None:
    splits_dir = tmp_path / "splits"
    write_official_splits(splits_dir)
    entries = list_videos(ffpp_root, splits_dir=splits_dir)
    # Pairs of the official lists; the loner 007 and DFD are in no list and split by hash.
    paired = [entry for entry in entries if "/youtube/" in entry.relative_path]
    paired += [entry for entry in entries if entry.method in FFPP_METHODS]
    paired = [entry for entry in paired if entry.group != "ffpp/007"]
    counts = Counter((entry.split, entry.label) for entry in paired)
    per_pair_fakes = 2 * len(FFPP_METHODS)
    assert counts[("train", 0)] == 6 and counts[("train", 1)] == 3 * per_pair_fakes
    assert counts[("val", 0)] == 2 and counts[("val", 1)] == per_pair_fakes
    assert counts[("test", 0)] == 2 and counts[("test", 1)] == per_pair_fakes
    by_id = {entry.video_id: entry for entry in entries}
    for video_id in ("ffpp/youtube/005", "ffpp/youtube/010", "ffpp/Face2Face/010_005"):
        assert by_id[video_id].split == "test"
        assert by_id[video_id].group == "ffpp/005_010"
    assert by_id["ffpp/NeuralTextures/982_004"].split == "val"
    assert_identity_invariants(entries)

    # The same files in root/splits/ are found without being named.
    write_official_splits(ffpp_root / "splits")
    assert portable(list_videos(ffpp_root)) == portable(entries)


def test_ffpp_official_split_contradicted_by_a_fake(ffpp_root: Path, tmp_path: Path) -> None:
    splits_dir = tmp_path / "splits"
    write_official_splits(splits_dir)
    # 000 is a train pair's id, 005 a test pair's: this fake would put one identity on two sides.
    touch_all(ffpp_root, ["manipulated_sequences/Deepfakes/c23/videos/000_005.mp4"])
    with pytest.raises(LayoutError, match="two sides of the split"):
        list_videos(ffpp_root, splits_dir=splits_dir)


def test_ffpp_groups_are_linked_transitively(tmp_path: Path) -> None:
    root = tmp_path / "ffpp"
    touch_all(
        root,
        [
            "original_sequences/youtube/c23/videos/000.mp4",
            "original_sequences/youtube/c23/videos/009.mp4",
            "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
            "manipulated_sequences/FaceSwap/c23/videos/003_009.mp4",
        ],
    )
    entries = list_videos(root)
    assert {entry.group for entry in entries} == {"ffpp/000_003_009"}
    assert_identity_invariants(entries)


def test_ffpp_badly_named_video(tmp_path: Path) -> None:
    root = tmp_path / "ffpp"
    touch_all(root, ["manipulated_sequences/Deepfakes/c23/videos/000-003.mp4"])
    with pytest.raises(LayoutError, match="expected a name like 000_003.mp4, found 000-003.mp4"):
        list_videos(root)


def test_ffpp_split_is_stable_and_independent_of_creation_order(tmp_path: Path) -> None:
    paths = ffpp_paths("c23")
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    touch_all(first_root, paths, shuffle_seed=1)
    touch_all(second_root, paths, shuffle_seed=2)
    first = list_videos(first_root, seed=3)
    assert portable(first) == portable(list_videos(first_root, seed=3))
    assert portable(first) == portable(list_videos(second_root, seed=3))


# Celeb-DF ----------------------------------------------------------------------------------

CELEBDF_PATHS = [
    "Celeb-real/id0_0000.mp4",
    "Celeb-real/id0_0001.mp4",
    "Celeb-real/id1_0000.mp4",
    "Celeb-real/id2_0000.mp4",
    "Celeb-real/id3_0000.mp4",
    "Celeb-synthesis/id0_id1_0000.mp4",
    "Celeb-synthesis/id1_id0_0000.mp4",
    "Celeb-synthesis/id0_id1_0001.mp4",
    "Celeb-synthesis/id2_id3_0000.mp4",
    "Celeb-synthesis/id3_id2_0005.mp4",
    "YouTube-real/00170.mp4",
    "YouTube-real/00171.mp4",
]


@pytest.fixture
def celebdf_root(tmp_path: Path) -> Path:
    root = tmp_path / "Celeb-DF-v2"
    touch_all(root, CELEBDF_PATHS)
    return root


def test_celebdf_labels_groups_and_sources_without_test_list(celebdf_root: Path) -> None:
    assert detect_layout(celebdf_root) == "celebdf"
    entries = list_videos(celebdf_root)
    by_id = {entry.video_id: entry for entry in entries}
    fake = by_id["celebdf/Celeb-synthesis/id0_id1_0001"]
    assert (fake.label, fake.method, fake.compression) == (1, "celebdf-synthesis", "")
    assert fake.source_relative_path == "Celeb-real/id0_0001.mp4"
    assert fake.group == by_id["celebdf/Celeb-real/id1_0000"].group == "celebdf/id0_id1"
    assert by_id["celebdf/Celeb-synthesis/id3_id2_0005"].source_relative_path is None
    youtube = by_id["celebdf/YouTube-real/00170"]
    assert (youtube.label, youtube.method, youtube.group) == (0, "real", "celebdf/youtube/00170")
    assert Counter(entry.label for entry in entries) == {0: 7, 1: 5}
    assert_identity_invariants(entries)


def test_celebdf_test_list_inverted_labels_and_group_propagation(celebdf_root: Path) -> None:
    # In this file 1 = real, 0 = fake. Only id0_0000's videos are listed; id0, id1 and their
    # fakes share a group, so the unlisted ones must move to test with them.
    (celebdf_root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 YouTube-real/00170.mp4\n"
    )
    entries = list_videos(celebdf_root, test_fraction=0.5)
    by_path = {entry.relative_path: entry for entry in entries}
    assert by_path["Celeb-real/id0_0000.mp4"].label == 0
    assert by_path["Celeb-synthesis/id0_id1_0000.mp4"].label == 1
    moved_to_test = ["Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4"]
    moved_to_test += ["Celeb-synthesis/id1_id0_0000.mp4", "Celeb-synthesis/id0_id1_0001.mp4"]
    for relative_path in moved_to_test + ["YouTube-real/00170.mp4"]:
        assert by_path[relative_path].split == "test"
    # With an official list, unlisted groups never go to test, whatever test_fraction says.
    for relative_path in ("Celeb-real/id2_0000.mp4", "YouTube-real/00171.mp4"):
        assert by_path[relative_path].split in ("train", "val")
    assert_identity_invariants(entries)


def test_celebdf_test_list_contradicting_folder(celebdf_root: Path) -> None:
    # Written with the usual 1 = fake convention: wrong for this file.
    (celebdf_root / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n")
    with pytest.raises(LayoutError, match=r"line 1 labels Celeb-synthesis/id0_id1_0000.mp4 1"):
        list_videos(celebdf_root)


def test_celebdf_test_list_naming_a_missing_video(celebdf_root: Path) -> None:
    (celebdf_root / "List_of_testing_videos.txt").write_text("1 YouTube-real/09999.mp4\n")
    with pytest.raises(LayoutError, match="YouTube-real/09999.mp4"):
        list_videos(celebdf_root)


def test_celebdf_split_independent_of_creation_order(tmp_path: Path) -> None:
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    touch_all(first_root, CELEBDF_PATHS, shuffle_seed=5)
    touch_all(second_root, CELEBDF_PATHS, shuffle_seed=6)
    assert portable(list_videos(first_root)) == portable(list_videos(second_root))


# DFDC --------------------------------------------------------------------------------------


@pytest.fixture
def dfdc_root(tmp_path: Path) -> Path:
    root = tmp_path / "dfdc"
    parts = {
        "dfdc_train_part_0": {
            "aaa.mp4": {"label": "REAL", "split": "train"},
            "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            "ccc.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            "ddd.mp4": {"label": "REAL", "split": "train", "original": None},
            # Listed but not downloaded: skipped.
            "zzz.mp4": {"label": "FAKE", "split": "train", "original": "ddd.mp4"},
        },
        "dfdc_train_part_1": {
            "eee.mp4": {"label": "FAKE", "split": "train", "original": "ddd.mp4"},
        },
    }
    for part, metadata in parts.items():
        videos = [f"{part}/{name}" for name in metadata if name != "zzz.mp4"]
        touch_all(root, videos)
        (root / part / "metadata.json").write_text(json.dumps(metadata))
    touch_all(root, ["test/videos/ttt.mp4", "test/videos/uuu.mp4"])
    (root / "test" / "labels.csv").write_text("filename,label\nttt.mp4,1\nuuu.mp4,0\n")
    return root


def test_dfdc_metadata_and_public_test_set(dfdc_root: Path) -> None:
    assert detect_layout(dfdc_root) == "dfdc"
    entries = list_videos(dfdc_root, test_fraction=0.9)
    by_path = {entry.relative_path: entry for entry in entries}
    assert len(entries) == 7
    fake = by_path["dfdc_train_part_0/bbb.mp4"]
    assert (fake.label, fake.method, fake.video_id) == (1, "dfdc", "dfdc/dfdc_train_part_0/bbb")
    assert fake.source_relative_path == "dfdc_train_part_0/aaa.mp4"
    assert fake.group == by_path["dfdc_train_part_0/ccc.mp4"].group == "dfdc/aaa"
    # An original in another part still groups and sources its fake.
    other_part_fake = by_path["dfdc_train_part_1/eee.mp4"]
    assert other_part_fake.group == "dfdc/ddd"
    assert other_part_fake.source_relative_path == "dfdc_train_part_0/ddd.mp4"
    assert by_path["test/videos/ttt.mp4"].label == 1
    assert by_path["test/videos/uuu.mp4"].label == 0
    assert {by_path[path].split for path in ("test/videos/ttt.mp4", "test/videos/uuu.mp4")} == {
        "test"
    }
    # The public test set is the test split: train parts go to train or val only.
    assert all(entry.split != "test" for entry in entries if entry.relative_path[:4] == "dfdc")
    assert_identity_invariants(entries)


def test_dfdc_without_test_set_splits_train_parts_three_ways(dfdc_root: Path) -> None:
    (dfdc_root / "test" / "labels.csv").unlink()
    for path in (dfdc_root / "test" / "videos").iterdir():
        path.unlink()
    entries = list_videos(dfdc_root, val_fraction=0.0, test_fraction=1.0)
    assert {entry.split for entry in entries} == {"test"}


def test_dfdc_unlabelled_video_and_bad_label(dfdc_root: Path) -> None:
    touch_all(dfdc_root, ["dfdc_train_part_1/new.mp4"])
    with pytest.raises(LayoutError, match="expected an entry for new.mp4 in"):
        list_videos(dfdc_root)
    (dfdc_root / "dfdc_train_part_1" / "new.mp4").unlink()
    (dfdc_root / "test" / "labels.csv").write_text("filename,label\nttt.mp4,FAKE\nuuu.mp4,0\n")
    with pytest.raises(LayoutError, match="row 2"):
        list_videos(dfdc_root)


def test_dfdc_preview_release(tmp_path: Path) -> None:
    root = tmp_path / "dfdc_preview_set"
    records = {
        "original_videos/111/111_A/1.mp4": {"label": "real", "set": "train"},
        "method_A/111/111_222/1.mp4": {
            "label": "fake",
            "set": "train",
            "target_id": "111",
            "swapped_id": "222",
        },
        "original_videos/222/222_B/1.mp4": {"label": "real", "set": "test"},
        "original_videos/333/333_A/1.mp4": {"label": "real", "set": "train"},
    }
    touch_all(root, list(records))
    (root / "dataset.json").write_text(json.dumps(records))
    assert detect_layout(root) == "dfdc"
    entries = list_videos(root)
    by_path = {entry.relative_path: entry for entry in entries}
    assert by_path["method_A/111/111_222/1.mp4"].label == 1
    # 222 is in the test set; the fake links 111 to 222, so 111's original follows to test.
    for relative_path in list(records)[:3]:
        assert by_path[relative_path].split == "test"
        assert by_path[relative_path].group == "dfdc/preview/111_222"
    assert by_path["original_videos/333/333_A/1.mp4"].split != "test"
    assert_identity_invariants(entries)


# Plain folders -----------------------------------------------------------------------------

FOLDER_PATHS = [
    "real/a.mp4",
    "REAL/deeper/still/b.MOV",
    "session/Original/c.avi",
    "fake/d.mkv",
    "FAKE/Deepfakes/c23/e.webm",
    "batch2/Manipulated/FaceSwap/f.m4v",
    "fake/actors/real/g.mp4",  # The nearest labelled folder wins: real.
    "unlabelled/h.mp4",  # Under no real/fake folder: not listed.
    "real/notes.txt",
    "real/._a.mp4",  # macOS resource fork, not a video.
]


@pytest.fixture
def folders_root(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    touch_all(root, FOLDER_PATHS)
    return root


def test_folders_synonyms_depth_and_methods(folders_root: Path) -> None:
    assert detect_layout(folders_root) == "folders"
    entries = list_videos(folders_root)
    summary = {entry.relative_path: (entry.label, entry.method) for entry in entries}
    assert summary == {
        "real/a.mp4": (0, "real"),
        "REAL/deeper/still/b.MOV": (0, "real"),
        "session/Original/c.avi": (0, "real"),
        "fake/d.mkv": (1, "fake"),
        "FAKE/Deepfakes/c23/e.webm": (1, "Deepfakes"),
        "batch2/Manipulated/FaceSwap/f.m4v": (1, "FaceSwap"),
        "fake/actors/real/g.mp4": (0, "real"),
    }
    for entry in entries:
        assert entry.group == entry.video_id == f"folders/{entry.relative_path}"
        assert entry.source_relative_path is None
    assert_identity_invariants(entries)


def test_folders_split_is_deterministic_by_video(tmp_path: Path) -> None:
    paths = [f"real/clip{index:03d}.mp4" for index in range(150)]
    paths += [f"fake/clip{index:03d}.mp4" for index in range(150)]
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    touch_all(first_root, paths, shuffle_seed=7)
    touch_all(second_root, paths, shuffle_seed=8)
    first = list_videos(first_root, val_fraction=0.2, test_fraction=0.2, seed=11)
    assert portable(first) == portable(
        list_videos(second_root, val_fraction=0.2, test_fraction=0.2, seed=11)
    )
    counts = Counter(entry.split for entry in first)
    # 300 videos at 0.2 each: about 60, well within binomial noise of these bounds.
    assert 35 <= counts["val"] <= 85 and 35 <= counts["test"] <= 85
    reseeded = list_videos(first_root, val_fraction=0.2, test_fraction=0.2, seed=12)
    assert portable(reseeded) != portable(first)


def test_folders_list_still_images_beside_videos(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    touch_all(
        root,
        [
            "real/001_neutral.jpg",
            "real/001_smiling.JPEG",
            "real/002_neutral.png",
            "real/scans/003.bmp",
            "fake/FaceSwap/004_005.webp",
            "real/clip.mp4",
            "real/._001_neutral.jpg",  # macOS resource fork
            "real/notes.txt",
            "real/animation.gif",  # not a still mattn reads
        ],
    )
    entries = list_videos(root)
    assert {entry.relative_path: (entry.label, entry.method) for entry in entries} == {
        "real/001_neutral.jpg": (0, "real"),
        "real/001_smiling.JPEG": (0, "real"),
        "real/002_neutral.png": (0, "real"),
        "real/scans/003.bmp": (0, "real"),
        "fake/FaceSwap/004_005.webp": (1, "FaceSwap"),
        "real/clip.mp4": (0, "real"),
    }
    for entry in entries:
        # Default grouping is unchanged: every file alone.
        assert entry.group == entry.video_id == f"folders/{entry.relative_path}"
    assert_identity_invariants(entries)


def test_other_layouts_do_not_list_still_images(tmp_path: Path) -> None:
    touch_all(tmp_path / "celeb", ["Celeb-real/id0_0000.mp4", "Celeb-real/id0_0000.jpg"])
    assert [entry.relative_path for entry in list_videos(tmp_path / "celeb")] == [
        "Celeb-real/id0_0000.mp4"
    ]


def test_group_by_name_prefix_keeps_each_person_in_one_split(tmp_path: Path) -> None:
    paths = []
    for person in range(120):
        paths += [f"real/{person:03d}_neutral.jpg", f"real/{person:03d}_smiling.jpg"]
    paths += ["real/alice.jpg", "real/alice.png", "fake/007_swapped.mp4", "real/_odd.jpg"]
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    touch_all(first_root, paths, shuffle_seed=3)
    touch_all(second_root, paths, shuffle_seed=4)
    options = {"group_by": "name-prefix", "val_fraction": 0.25, "test_fraction": 0.0}
    entries = list_videos(first_root, **options)
    assert portable(entries) == portable(list_videos(second_root, **options))
    by_path = {entry.relative_path: entry for entry in entries}
    for person in range(120):
        neutral = by_path[f"real/{person:03d}_neutral.jpg"]
        smiling = by_path[f"real/{person:03d}_smiling.jpg"]
        assert neutral.group == smiling.group == f"folders/{person:03d}"
        assert neutral.split == smiling.split
    # A person's fake goes with their photos; a name without "_" is its own person.
    assert by_path["fake/007_swapped.mp4"].group == "folders/007"
    assert by_path["fake/007_swapped.mp4"].split == by_path["real/007_neutral.jpg"].split
    assert by_path["real/alice.jpg"].group == by_path["real/alice.png"].group == "folders/alice"
    assert by_path["real/_odd.jpg"].group == "folders/_odd"
    assert_identity_invariants(entries)
    # The split is by person: 121 groups plus "_odd" at 0.25, and no test split.
    persons_by_split = Counter(
        entry.split for entry in entries if entry.relative_path.endswith("_neutral.jpg")
    )
    assert set(persons_by_split) == {"train", "val"}
    assert 15 <= persons_by_split["val"] <= 45
    # Video ids stay per file.
    assert len({entry.video_id for entry in entries}) == len(paths)


def test_group_by_is_checked(tmp_path: Path, folders_root: Path, celebdf_root: Path) -> None:
    with pytest.raises(
        UsageError, match="unknown --group-by 'person': expected file or name-prefix"
    ):
        list_videos(folders_root, group_by="person")
    with pytest.raises(UsageError, match="--group-by name-prefix only applies to real/fake"):
        list_videos(celebdf_root, group_by="name-prefix")


# Detection and errors ----------------------------------------------------------------------


def test_unknown_layout_error_lists_what_was_expected_and_found(tmp_path: Path) -> None:
    touch_all(tmp_path / "stuff", ["holiday/beach.mp4", "readme.txt"])
    with pytest.raises(LayoutError) as raised:
        detect_layout(tmp_path / "stuff")
    message = str(raised.value)
    assert "does not look like FaceForensics++, Celeb-DF, DFDC or real/fake folders" in message
    assert "original_sequences/" in message and "Celeb-real/" in message
    assert "found: holiday/, readme.txt" in message


def test_empty_folder_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match=r"found: nothing \(the folder is empty\)"):
        list_videos(tmp_path / "empty")


def test_forced_layout_that_does_not_match(celebdf_root: Path) -> None:
    with pytest.raises(LayoutError) as raised:
        list_videos(celebdf_root, layout="ffpp")
    message = str(raised.value)
    assert "does not look like FaceForensics++: expected original_sequences/" in message
    assert "found: Celeb-real/, Celeb-synthesis/, YouTube-real/" in message
    assert list_videos(celebdf_root, layout="celebdf")
    with pytest.raises(UsageError, match="unknown dataset layout 'celeb'"):
        list_videos(celebdf_root, layout="celeb")


def test_layout_with_no_videos(tmp_path: Path) -> None:
    (tmp_path / "ds" / "Celeb-real").mkdir(parents=True)
    (tmp_path / "ds" / "Celeb-real" / "notes.txt").touch()
    with pytest.raises(LayoutError, match="looks like Celeb-DF but holds no videos"):
        list_videos(tmp_path / "ds")
    (tmp_path / "folders" / "real").mkdir(parents=True)
    with pytest.raises(LayoutError, match="looks like real/fake folders but holds no videos"):
        list_videos(tmp_path / "folders")


def test_missing_root_and_bad_options(tmp_path: Path, folders_root: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        list_videos(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="only apply to FaceForensics"):
        list_videos(folders_root, splits_dir=tmp_path)
    with pytest.raises(UsageError, match="leaving no room"):
        list_videos(folders_root, val_fraction=0.6, test_fraction=0.6)


def test_detection_markers_and_priority(tmp_path: Path) -> None:
    assert LAYOUTS == ("ffpp", "celebdf", "dfdc", "folders")
    kaggle_sample = tmp_path / "kaggle"
    touch_all(kaggle_sample, ["train_sample_videos/abc.mp4"])
    metadata = {"abc.mp4": {"label": "FAKE", "split": "train", "original": "xyz.mp4"}}
    (kaggle_sample / "train_sample_videos" / "metadata.json").write_text(json.dumps(metadata))
    assert detect_layout(kaggle_sample) == "dfdc"
    entry = list_videos(kaggle_sample)[0]
    assert (entry.video_id, entry.group, entry.source_relative_path) == (
        "dfdc/train_sample_videos/abc",
        "dfdc/xyz",
        None,
    )
    # A real/fake folder found only a few levels down.
    nested = tmp_path / "nested"
    touch_all(nested, ["a/b/c/fake/x.mp4"])
    assert detect_layout(nested) == "folders"
    # Several markers: the earlier layout in LAYOUTS wins.
    merged = tmp_path / "merged"
    touch_all(merged, ["Celeb-real/id0_0000.mp4", "real/x.mp4"])
    assert detect_layout(merged) == "celebdf"
    touch_all(merged, ["original_sequences/youtube/c23/videos/000.mp4"])
    assert detect_layout(merged) == "ffpp"


# Split helpers -----------------------------------------------------------------------------


def test_hash_split_fractions_and_stability() -> None:
    groups = [f"group{index}" for index in range(4000)]
    splits = [hash_split(group, seed=0, val_fraction=0.1, test_fraction=0.2) for group in groups]
    counts = Counter(splits)
    assert 300 <= counts["val"] <= 500 and 700 <= counts["test"] <= 900
    # Golden values: a split must not change across versions or machines, or manifests and
    # trained models would silently disagree about which videos were held out.
    assert hash_fraction("ffpp/000", 0) == pytest.approx(0.2023113895697787, abs=1e-15)
    golden = ["train", "train", "val", "val", "train", "val", "train", "val"]
    assert [
        hash_split(f"g{index}", seed=0, val_fraction=0.3, test_fraction=0.3) for index in range(8)
    ] == golden


def test_identity_groups_names() -> None:
    groups = IdentityGroups()
    groups.link("id10", "id2")
    groups.add("id7")
    assert groups.name("id10") == groups.name("id2") == "id2_id10"
    assert groups.name("id7") == "id7"
    for other in ("id3", "id4", "id5"):
        groups.link("id2", other)
    assert groups.name("id5") == "id2+4"
