"""MTCNN's networks and box arithmetic, as mattn defines them, against facenet-pytorch's own;
its resampling with and without the resize pool."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from deepfake_cli import mtcnn_boxes, mtcnn_networks
from deepfake_cli.errors import WeightsError
from deepfake_cli.mtcnn_boxes import (
    batched_nms,
    boxes_from_pnet,
    clipped_pixels,
    regressed,
    squared,
)
from deepfake_cli.mtcnn_networks import load_networks

detect_face = pytest.importorskip("facenet_pytorch.models.utils.detect_face")


@pytest.fixture(scope="module")
def networks():
    return load_networks()


@pytest.fixture(scope="module")
def reference_networks():
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    return PNet().eval(), RNet().eval(), ONet().eval()


def _random_boxes(count: int, *, frames: int, seed: int, spread: float = 200.0):
    generator = np.random.default_rng(seed)
    top_left = generator.uniform(0, spread, (count, 2))
    sizes = generator.uniform(10, 60, (count, 2))
    boxes = torch.from_numpy(np.concatenate([top_left, top_left + sizes], 1).astype(np.float32))
    scores = torch.from_numpy(generator.uniform(0.5, 1.0, count).astype(np.float32))
    frame_indices = torch.from_numpy(generator.integers(0, frames, count))
    return boxes, scores, frame_indices


@torch.inference_mode()
def test_the_networks_give_facenet_pytorchs_outputs_bit_for_bit(networks, reference_networks):
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.rand((2, 3, 61, 83), generator=generator) * 2 - 1,  # a pyramid level
        torch.rand((5, 3, 24, 24), generator=generator) * 2 - 1,
        torch.rand((5, 3, 48, 48), generator=generator) * 2 - 1,
    ]
    for network, reference, images in zip(networks, reference_networks, inputs, strict=True):
        for memory_format in (torch.contiguous_format, torch.channels_last):
            network.to(memory_format=memory_format)
            reference.to(memory_format=memory_format)
            batch = images.contiguous(memory_format=memory_format)
            for ours, theirs in zip(network(batch), reference(batch), strict=True):
                assert ours.shape == theirs.shape
                assert torch.equal(ours, theirs)
        network.to(memory_format=torch.contiguous_format)


@torch.inference_mode()
def test_the_openvino_networks_give_the_torch_networks_outputs(networks):
    pytest.importorskip("openvino")
    from deepfake_cli.mtcnn_openvino import openvino_networks

    compiled = openvino_networks(networks)
    generator = torch.Generator().manual_seed(1)
    inputs = [
        # Pyramid levels of even and odd sizes (torch's ceil_mode pooling), a crop batch each.
        [(2, 3, 61, 83), (3, 3, 12, 12), (1, 3, 173, 308)],
        [(5, 3, 24, 24), (1, 3, 24, 24)],
        [(5, 3, 48, 48)],
    ]
    for network, openvino_network, shapes in zip(networks, compiled, inputs, strict=True):
        for shape in shapes:
            batch = (torch.rand(shape, generator=generator) * 2 - 1).contiguous(
                memory_format=torch.channels_last
            )
            for ours, theirs in zip(openvino_network(batch), network(batch), strict=True):
                assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
                torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_boxes_from_pnet_are_facenet_pytorchs():
    generator = torch.Generator().manual_seed(1)
    offsets = torch.rand((3, 4, 20, 30), generator=generator) - 0.5
    face_probs = torch.rand((3, 20, 30), generator=generator)
    ours, our_frames = boxes_from_pnet(offsets, face_probs, 0.24, 0.6)
    theirs, their_frames = detect_face.generateBoundingBox(offsets, face_probs, 0.24, 0.6)
    assert len(ours) > 100
    assert torch.equal(ours, theirs)
    assert torch.equal(our_frames, their_frames)


def test_regression_squares_and_clipping_are_facenet_pytorchs():
    boxes, scores, _ = _random_boxes(50, frames=1, seed=2)
    boxes = torch.cat([boxes - 30, scores[:, None]], dim=1)  # some boxes over the frame's edge
    offsets = torch.rand((50, 4), generator=torch.Generator().manual_seed(3)) - 0.5
    assert torch.equal(regressed(boxes, offsets), detect_face.bbreg(boxes.clone(), offsets))
    assert torch.equal(squared(boxes), detect_face.rerec(boxes.clone()))
    ours = clipped_pixels(boxes, 150, 180)
    theirs = detect_face.pad(boxes.clone(), 180, 150)
    for our_values, their_values in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(our_values, their_values)


@pytest.mark.parametrize(
    ("count", "frames"),
    [(300, 6), (3000, 6), (mtcnn_boxes.NMS_MATRIX_MAX_BOXES + 200, 1)],  # the last: row by row
)
def test_nms_keeps_what_torchvision_keeps_in_its_order(count: int, frames: int):
    from torchvision.ops import batched_nms as torchvision_batched_nms

    for seed, threshold in ((4, 0.5), (5, 0.7)):
        boxes, scores, frame_indices = _random_boxes(count, frames=frames, seed=seed, spread=120.0)
        ours = batched_nms(boxes, scores, frame_indices, threshold)
        theirs = torchvision_batched_nms(boxes, scores, frame_indices, threshold)
        assert 0 < len(ours) < count  # boxes were dropped, and kept
        assert torch.equal(ours, theirs)


def test_min_overlap_nms_keeps_what_facenet_pytorch_keeps():
    boxes, scores, frame_indices = _random_boxes(200, frames=3, seed=6, spread=100.0)
    ours = batched_nms(boxes, scores, frame_indices, 0.7, overlap="min")
    theirs = detect_face.batched_nms_numpy(boxes, scores, frame_indices, 0.7, "Min")
    assert 0 < len(ours) < 200
    assert torch.equal(ours, theirs)


def test_nms_of_no_boxes_and_of_boxes_in_different_frames():
    empty = torch.zeros((0, 4))
    assert len(batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)) == 0
    same_box = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    scores = torch.tensor([0.7, 0.9, 0.8])
    assert batched_nms(same_box, scores, torch.tensor([0, 0, 1]), 0.5).tolist() == [1, 2]


def test_missing_facenet_pytorch_is_a_weights_error_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(mtcnn_networks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match="facenet-pytorch"):
        load_networks()


def test_an_unreadable_weights_file_is_a_weights_error(tmp_path, monkeypatch):
    (tmp_path / "pnet.pt").write_bytes(b"not a checkpoint")
    monkeypatch.setattr(mtcnn_networks, "weights_folder", lambda: tmp_path)
    with pytest.raises(WeightsError, match="pnet.pt could not be read"):
        load_networks()


def test_detecting_faces_does_not_import_torchvision():
    script = (
        "import sys, numpy as np\n"
        "from deepfake_cli.faces import FaceDetector\n"
        "FaceDetector().detect(np.zeros((1, 300, 400, 3), np.uint8))\n"
        "print('torchvision' in sys.modules, 'facenet_pytorch' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert completed.stdout.split() == ["False", "False"]


def test_the_resize_pool_gives_the_pixels_of_one_thread():
    from concurrent.futures import ThreadPoolExecutor

    from deepfake_cli.mtcnn_inputs import HalvingSampler, pyramid_levels

    generator = np.random.default_rng(7)
    frames = [generator.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(3)]
    level_sizes = [level[1:] for level in pyramid_levels(720, 1280, 50.0)]
    # More regions than one task cuts, of several sizes, in all three frames.
    regions = [
        (index, index % 3, top, top + side, left, left + side + index % 7)
        for index, (top, left, side) in enumerate(
            (generator.integers(0, 400), generator.integers(0, 900), generator.integers(20, 300))
            for _ in range(150)
        )
    ]
    alone = HalvingSampler(frames, level_sizes, device=torch.device("cpu"))
    with ThreadPoolExecutor(2) as pool:
        pooled = HalvingSampler(frames, level_sizes, device=torch.device("cpu"), pool=pool)
        for height, width in level_sizes:
            assert torch.equal(pooled.level(height, width), alone.level(height, width))
        for size in (24, 48):
            pooled_crops, pooled_kept = pooled.crops(regions, size)
            alone_crops, alone_kept = alone.crops(regions, size)
            assert torch.equal(pooled_crops, alone_crops)
            assert pooled_kept == alone_kept == list(range(150))
