"""Face detection on real faces (tests/data, see its README) and track linking by hand."""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deepfake_cli import mtcnn_inputs
from deepfake_cli.faces import Detection, FaceDetector
from deepfake_cli.mtcnn_inputs import pyramid_levels
from deepfake_cli.tracks import Track, box_iou, link_tracks, visible_side_px

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    # MTCNN's second and third stages run hundreds of tiny per-box tensor ops; with OpenMP on
    # two shared CI cores each op pays a thread hand-off that costs more than the op itself
    # (measured ~6x slower than one thread when the cores are busy).
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous_threads)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def carphone_frames() -> np.ndarray:
    """All 120 frames of the 176x144 talking-head clip, (120, 144, 176, 3) uint8 RGB."""
    capture = cv2.VideoCapture(str(DATA_DIR / "carphone_pristine.mp4"))
    frames = []
    while True:
        success, frame_bgr = capture.read()
        if not success:
            break
        frames.append(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(frames) == 120
    return np.stack(frames)


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    """The 512x600 portrait, (600, 512, 3) uint8 RGB."""
    image_bgr = cv2.imread(str(DATA_DIR / "grace_hopper.jpg"))
    assert image_bgr is not None
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def _assert_plausible_face(detection: Detection, frame_shape: tuple[int, ...]) -> None:
    frame_height, frame_width = frame_shape[:2]
    x_min, y_min, x_max, y_max = detection.box_xyxy
    assert 0.9 <= detection.det_prob <= 1.0
    assert x_max > x_min and y_max > y_min
    center_x, center_y = detection.center_xy
    assert 0 <= center_x <= frame_width and 0 <= center_y <= frame_height
    assert detection.landmarks is not None and len(detection.landmarks) == 5
    left_eye, right_eye, nose, mouth_left, mouth_right = detection.landmarks
    for point_x, point_y in detection.landmarks:
        assert x_min <= point_x <= x_max and y_min <= point_y <= y_max
    # An upright face: left eye left of the right eye, eyes above the nose above the mouth.
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


# ----- FaceDetector on real faces -----


def test_finds_the_one_face_in_nearly_every_carphone_frame(detector, carphone_frames):
    sampled_frames = carphone_frames[::4]  # (30, 144, 176, 3)

    detections_per_frame = detector.detect(sampled_frames)

    assert len(detections_per_frame) == len(sampled_frames)
    frames_with_one_face = [len(detections) == 1 for detections in detections_per_frame]
    assert sum(frames_with_one_face) >= len(sampled_frames) - 1
    for detections in detections_per_frame:
        for detection in detections:
            _assert_plausible_face(detection, sampled_frames.shape[1:])
            # The man's face is about 50x60 px, left of centre.
            assert 35 <= detection.width <= 80 and 40 <= detection.height <= 90
    tracks = link_tracks(detections_per_frame)
    assert len(tracks) == 1
    assert len(tracks[0].detections) >= len(sampled_frames) - 1


def test_finds_the_portrait_face_at_every_detection_scale(grace_hopper):
    full_size = FaceDetector(max_side=1024).detect([grace_hopper])[0]
    # 600 px -> 256 px: detected on a 0.43x copy, reported back in original pixels.
    downscaled = FaceDetector(max_side=256).detect([grace_hopper])[0]

    assert len(full_size) == 1 and len(downscaled) == 1
    _assert_plausible_face(full_size[0], grace_hopper.shape)
    _assert_plausible_face(downscaled[0], grace_hopper.shape)
    # The face is around x 165..350, y 105..345.
    assert full_size[0].box_xyxy == pytest.approx((165, 105, 350, 345), abs=25)
    assert box_iou(full_size[0].box_xyxy, downscaled[0].box_xyxy) > 0.75


def test_blank_and_tiny_frames_give_no_detections(detector):
    blank = np.zeros((144, 176, 3), dtype=np.uint8)
    gray = np.full((240, 320, 3), 128, dtype=np.uint8)
    tiny = np.zeros((10, 10, 3), dtype=np.uint8)
    small = np.full((20, 20, 3), 255, dtype=np.uint8)
    thin = np.zeros((13, 300, 3), dtype=np.uint8)

    assert detector.detect(np.stack([blank, blank])) == [[], []]
    assert detector.detect([tiny]) == [[]]
    assert detector.detect([small, thin, gray]) == [[], [], []]
    assert detector.detect([]) == []


def test_mixed_frame_sizes_in_one_call(detector, carphone_frames, grace_hopper):
    # A 1920x1080 frame with the portrait pasted in: detected at 1024x576, boxes scaled back.
    full_hd = np.zeros((1080, 1920, 3), dtype=np.uint8)
    full_hd[200:800, 1000:1512] = grace_hopper
    frames = [
        carphone_frames[0],
        np.zeros((64, 64, 3), dtype=np.uint8),
        grace_hopper,
        np.zeros((10, 10, 3), dtype=np.uint8),
        full_hd,
        carphone_frames[60],
    ]

    detections_per_frame = detector.detect(frames)

    assert [len(detections) for detections in detections_per_frame] == [1, 0, 1, 0, 1, 1]
    portrait_box = np.array(detections_per_frame[2][0].box_xyxy)
    pasted_box = np.array(detections_per_frame[4][0].box_xyxy) - (1000, 200, 1000, 200)
    # Detected at half resolution, the pasted face is found where it was pasted.
    assert box_iou(portrait_box, pasted_box) > 0.75
    _assert_plausible_face(detections_per_frame[4][0], full_hd.shape)


def test_two_people_side_by_side_give_two_detections_and_two_stable_tracks(
    detector, carphone_frames
):
    # Two different moments of the clip side by side: two faces, (6, 144, 352, 3).
    left_positions = range(0, 60, 10)
    two_person_frames = np.stack(
        [
            np.concatenate([carphone_frames[position], carphone_frames[position + 60]], axis=1)
            for position in left_positions
        ]
    )

    detections_per_frame = detector.detect(two_person_frames)

    assert [len(detections) for detections in detections_per_frame] == [2] * 6
    tracks = link_tracks(detections_per_frame)
    assert [track.person_id for track in tracks] == [0, 1]
    frame_width = carphone_frames.shape[2]
    for track in tracks:
        assert track.frame_positions == list(range(6))
        on_left = [detection.center_xy[0] < frame_width for detection in track.detections.values()]
        # Each track stays with one person for the whole clip.
        assert all(on_left) or not any(on_left)
    assert {tracks[0].last_detection().center_xy[0] < frame_width} != {
        tracks[1].last_detection().center_xy[0] < frame_width
    }


def test_detect_rejects_frames_of_the_wrong_layout(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((144, 176, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        detector.detect([np.zeros((144, 176), dtype=np.uint8)])
    with pytest.raises(ValueError):
        detector.detect([np.zeros((144, 176, 3), dtype=np.float32)])


def test_detection_size_and_minimum_face_size(detector):
    assert detector.detection_size(1080, 1920) == (576, 1024)
    assert detector.detection_size(1920, 1080) == (1024, 576)
    assert detector.detection_size(144, 176) == (144, 176)
    # 40 px for ordinary frames, a fifth of the shorter side in small ones, never below 20.
    assert detector.min_face_size_for(576, 1024) == 40
    assert detector.min_face_size_for(144, 176) == 28
    assert detector.min_face_size_for(64, 64) == 20
    # In the frame's own pixels: the minimum grows with frames larger than max_side.
    assert detector.smallest_face_px(144, 176) == 28
    assert detector.smallest_face_px(720, 1280) == pytest.approx(50.0)
    assert detector.smallest_face_px(1080, 1920) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        FaceDetector(min_face_size=8)


def test_the_pyramid_starts_where_the_smallest_face_fills_the_window_and_ends_at_it():
    levels = pyramid_levels(720, 1280, smallest_face_px=50.0)

    first_scale, first_height, first_width = levels[0]
    assert first_scale == pytest.approx(12 / 50)
    assert (first_height, first_width) == (173, 308)  # int(side * scale + 1), as facenet-pytorch
    scales = [scale for scale, _, _ in levels]
    assert scales == pytest.approx([first_scale * 0.709**step for step in range(len(levels))])
    # The last level's shorter side still holds the 12 px window; one more would not.
    assert 720 * scales[-1] >= 12 > 720 * scales[-1] * 0.709
    assert pyramid_levels(20, 300, smallest_face_px=28.0) == []


def test_small_frames_are_resampled_exactly_as_facenet_pytorch(carphone_frames):
    """Frames up to CIF keep facenet-pytorch's arithmetic: its own MTCNN.detect, same boxes."""
    from facenet_pytorch import MTCNN

    frames = carphone_frames[::20]  # (6, 144, 176, 3), QCIF
    assert frames.shape[1] * frames.shape[2] <= mtcnn_inputs.EXACT_RESAMPLING_MAX_PIXELS
    detector = FaceDetector()
    reference = MTCNN(min_face_size=detector.min_face_size_for(144, 176), keep_all=True)

    detections_per_frame = detector.detect(frames)
    boxes_per_frame, probs_per_frame, points_per_frame = reference.detect(frames, landmarks=True)

    for detections, boxes, probs, points in zip(
        detections_per_frame, boxes_per_frame, probs_per_frame, points_per_frame, strict=True
    ):
        kept = [index for index, prob in enumerate(probs) if prob is not None and prob >= 0.9]
        assert len(detections) == len(kept) == 1
        (detection,) = detections
        np.testing.assert_allclose(detection.box_xyxy, boxes[kept[0]].astype(float), atol=1e-3)
        np.testing.assert_allclose(detection.landmarks, points[kept[0]].astype(float), atol=1e-3)
        assert detection.det_prob == pytest.approx(float(probs[kept[0]]), abs=1e-5)


def test_large_frames_resampled_from_halvings_find_the_faces_the_exact_resampling_finds(
    carphone_frames, monkeypatch
):
    # The talking head at 720p, as the scan benchmark makes it, once whole and once cut by the
    # left edge of the frame.
    frames = []
    for shift in (200, -300):
        canvas = np.zeros((720, 1280, 3), dtype=np.uint8)
        head = cv2.resize(carphone_frames[30], (880, 720), interpolation=cv2.INTER_CUBIC)
        left = max(shift, 0)
        canvas[:, left : left + 880 + min(shift, 0)] = head[:, -min(shift, 0) :]
        frames.append(canvas)
    detector = FaceDetector()

    from_halvings = detector.detect(frames)
    monkeypatch.setattr(mtcnn_inputs, "EXACT_RESAMPLING_MAX_PIXELS", 1280 * 720)
    exact = detector.detect(frames)

    assert [len(detections) for detections in from_halvings] == [1, 1]
    assert [len(detections) for detections in exact] == [1, 1]
    for (halved,), (reference,) in zip(from_halvings, exact, strict=True):
        _assert_plausible_face(halved, frames[0].shape)
        # About MTCNN's own jitter: +-1 grey level of noise moves its boxes as much.
        assert box_iou(halved.box_xyxy, reference.box_xyxy) > 0.85
        landmark_shift = np.abs(np.subtract(halved.landmarks, reference.landmarks)).max()
        assert landmark_shift < 0.08 * reference.width


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino")
def test_the_openvino_runtime_finds_the_faces_torch_finds(carphone_frames, grace_hopper):
    head = cv2.resize(carphone_frames[60], (880, 720), interpolation=cv2.INTER_CUBIC)
    wide = np.zeros((720, 1280, 3), dtype=np.uint8)
    wide[:, 200:1080] = head  # resampled from halvings, as 720p video is
    batches = [carphone_frames[::8], [grace_hopper], [wide]]
    torch_detector, openvino_detector = FaceDetector(), FaceDetector(runtime="openvino")
    assert openvino_detector.runtime == "openvino"
    found = 0
    for frames in batches:
        for ours, theirs in zip(
            openvino_detector.detect(frames), torch_detector.detect(frames), strict=True
        ):
            assert len(ours) == len(theirs)
            for openvino_face, torch_face in zip(ours, theirs, strict=True):
                # Float rounding of the same arithmetic: a ten-thousandth of a pixel.
                assert np.allclose(openvino_face.box_xyxy, torch_face.box_xyxy, atol=1e-2)
                assert np.allclose(openvino_face.landmarks, torch_face.landmarks, atol=1e-2)
                assert abs(openvino_face.det_prob - torch_face.det_prob) < 1e-5
                found += 1
    assert found >= 17  # the carphone head in (nearly) all 15 frames, Grace Hopper, the 720p one


@pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or not sys.platform.startswith("linux"),
    reason="needs openvino and Linux's sigaltstack",
)
def test_openvino_networks_freed_in_any_order_leave_this_threads_signal_stack_alone():
    """OpenVINO's CPU plugin swaps the signal stack of the thread that compiles; freed out of
    order, its models would leave this thread on a freed stack, and the next signal crashes."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SignalStack(ctypes.Structure):
        _fields_ = [
            ("ss_sp", ctypes.c_void_p),
            ("ss_flags", ctypes.c_int),
            ("ss_size", ctypes.c_size_t),
        ]

    def signal_stack() -> tuple:
        stack = SignalStack()
        assert libc.sigaltstack(None, ctypes.byref(stack)) == 0
        return stack.ss_sp, stack.ss_flags, stack.ss_size

    before = signal_stack()
    first, second = FaceDetector(runtime="openvino"), FaceDetector(runtime="openvino")
    del first  # the first compiled is freed first: not the reverse order
    gc.collect()
    del second
    gc.collect()
    assert signal_stack() == before


def test_a_runtime_the_detector_does_not_have_is_refused():
    with pytest.raises(ValueError, match="runtime must be one of torch, openvino"):
        FaceDetector(runtime="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        FaceDetector(device="cuda", runtime="openvino")


# ----- link_tracks with hand-made detections -----


def _face(center_x: float, center_y: float, side: float = 100.0, det_prob: float = 0.99):
    half_side = side / 2.0
    return Detection(
        box_xyxy=(
            center_x - half_side,
            center_y - half_side,
            center_x + half_side,
            center_y + half_side,
        ),
        det_prob=det_prob,
        landmarks=None,
    )


def _centers_x(track: Track) -> list[float]:
    return [track.detections[position].center_xy[0] for position in track.frame_positions]


def test_two_people_crossing_slowly_keep_their_tracks():
    # A walks right along y=100, B walks left along y=160; they pass each other mid-clip.
    detections_per_frame = [
        [_face(100.0 + 40.0 * step, 100.0), _face(500.0 - 40.0 * step, 160.0, side=90.0)]
        for step in range(11)
    ]

    tracks = link_tracks(detections_per_frame)

    assert len(tracks) == 2
    walking_right, walking_left = tracks  # same first frame: the larger face (A) is person 0
    assert _centers_x(walking_right) == sorted(_centers_x(walking_right))
    assert _centers_x(walking_left) == sorted(_centers_x(walking_left), reverse=True)
    assert all(len(track.detections) == 11 for track in tracks)


def test_a_person_missing_in_some_frames_keeps_one_track():
    detections_per_frame = [
        [_face(100.0, 100.0), _face(400.0, 100.0)],
        [_face(105.0, 100.0), _face(400.0, 105.0)],
        [_face(400.0, 110.0)],
        [],
        [_face(112.0, 104.0), _face(398.0, 110.0)],
    ]

    tracks = link_tracks(detections_per_frame)

    assert len(tracks) == 2
    assert tracks[0].frame_positions == [0, 1, 4]
    assert tracks[1].frame_positions == [0, 1, 2, 4]


def test_far_apart_frames_link_by_center_distance_but_not_across_the_frame():
    # 70 px steps for a 100 px face: IoU ~0.18 < 0.3, centre distance 0.7 faces, so linked.
    moving = [[_face(100.0 + 70.0 * step, 200.0)] for step in range(4)]
    assert box_iou(moving[0][0].box_xyxy, moving[1][0].box_xyxy) < 0.3
    assert len(link_tracks(moving)) == 1

    # A 300 px jump (3 faces) is someone else.
    jumping = [[_face(100.0, 200.0)], [_face(400.0, 200.0)]]
    assert len(link_tracks(jumping)) == 2

    # Same place, three times the size: a different face (e.g. someone stepping in front).
    growing = [[_face(300.0, 200.0, side=60.0)], [_face(300.0, 200.0, side=180.0)]]
    assert len(link_tracks(growing)) == 2


def test_max_faces_keeps_the_largest_faces_of_each_frame():
    detections_per_frame = [
        [_face(100.0, 100.0, side=40.0, det_prob=0.999), _face(400.0, 100.0, side=120.0)],
        [_face(402.0, 101.0, side=118.0), _face(101.0, 100.0, side=41.0)],
        [_face(700.0, 100.0, side=30.0), _face(405.0, 100.0, side=119.0)],
    ]

    tracks = link_tracks(detections_per_frame, max_faces=1)

    assert len(tracks) == 1
    assert tracks[0].frame_positions == [0, 1, 2]
    assert all(detection.width > 100 for detection in tracks[0].detections.values())
    with pytest.raises(ValueError):
        link_tracks(detections_per_frame, max_faces=0)


def test_ids_follow_first_appearance_then_size_and_short_tracks_can_be_dropped():
    detections_per_frame = [
        [_face(100.0, 100.0, side=50.0), _face(400.0, 100.0, side=120.0)],
        [_face(100.0, 100.0, side=50.0), _face(400.0, 100.0, side=120.0)],
        [_face(100.0, 100.0, side=50.0), _face(400.0, 100.0, side=120.0), _face(800.0, 500.0)],
        [_face(100.0, 100.0, side=50.0), _face(400.0, 100.0, side=120.0), _face(800.0, 500.0)],
        [_face(100.0, 100.0, side=50.0), _face(700.0, 800.0, side=30.0)],
    ]

    tracks = link_tracks(detections_per_frame)
    kept_tracks = link_tracks(detections_per_frame, min_track_fraction=0.3)

    # Frame 0: the 120 px face first, then the 50 px one; frame 2 and 4 bring new people.
    assert [
        (track.person_id, track.detections[track.frame_positions[0]].width) for track in tracks
    ] == [
        (0, 120.0),
        (1, 50.0),
        (2, 100.0),
        (3, 30.0),
    ]
    # The one-frame track (1/5 < 0.3) goes; ids stay contiguous.
    assert [track.person_id for track in kept_tracks] == [0, 1, 2]
    assert [len(track.detections) for track in kept_tracks] == [4, 5, 2]


def test_two_faces_of_one_frame_never_share_a_track():
    detections_per_frame = [
        [_face(100.0, 100.0)],
        [_face(110.0, 100.0), _face(90.0, 100.0)],
    ]

    tracks = link_tracks(detections_per_frame)

    assert len(tracks) == 2
    assert sorted(len(track.detections) for track in tracks) == [1, 2]


def test_link_tracks_of_nothing_is_empty():
    assert link_tracks([]) == []
    assert link_tracks([[], [], []]) == []


# ----- sparse sampling: 32 frames over a minute, so heads move between samples -----


def _positions_x(track: Track) -> dict[int, float]:
    return {position: track.detections[position].center_xy[0] for position in track.detections}


def test_a_walking_person_keeps_one_track_between_far_apart_samples():
    # 1.2 face sizes per sample: beyond any IoU, and beyond the old one-face-size radius.
    walking = [[_face(100.0 + 120.0 * step, 300.0)] for step in range(8)]
    (track,) = link_tracks(walking)
    assert track.frame_positions == list(range(8))


def test_a_person_missing_for_several_samples_is_found_where_their_motion_leads():
    # 0.8 faces per sample, not detected in samples 3 to 5: 3.2 faces from where last seen.
    detections_per_frame = [
        [] if step in (3, 4, 5) else [_face(100.0 + 80.0 * step, 300.0)] for step in range(10)
    ]
    (track,) = link_tracks(detections_per_frame)
    assert track.frame_positions == [0, 1, 2, 6, 7, 8, 9]


def test_a_head_that_stopped_while_unseen_keeps_its_track():
    # Moves a face size per sample, is missed twice, and is back where it was last seen.
    detections_per_frame = [[_face(100.0 + 100.0 * step, 300.0)] for step in range(4)]
    detections_per_frame += [[], [], [_face(400.0, 300.0)], [_face(402.0, 301.0)]]
    (track,) = link_tracks(detections_per_frame)
    assert track.frame_positions == [0, 1, 2, 3, 6, 7]


def test_two_people_crossing_quickly_keep_their_tracks():
    # 0.9 face sizes per sample towards each other: at the crossing, each face is nearer to
    # where the other person was last seen than to where they were themselves.
    detections_per_frame = [
        [_face(100.0 + 90.0 * step, 300.0), _face(900.0 - 90.0 * step, 330.0, side=90.0)]
        for step in range(10)
    ]
    walking_right, walking_left = link_tracks(detections_per_frame)
    assert list(_positions_x(walking_right).values()) == [100.0 + 90.0 * s for s in range(10)]
    assert list(_positions_x(walking_left).values()) == [900.0 - 90.0 * s for s in range(10)]


def test_a_newcomer_beside_a_missed_person_does_not_take_their_track():
    # The presenter is missed in sample 5, when someone appears 1.7 face sizes beside them.
    detections_per_frame = [[_face(400.0, 300.0)] for _ in range(5)]
    detections_per_frame += [[_face(570.0, 300.0)]]
    detections_per_frame += [[_face(400.0, 300.0), _face(570.0, 300.0)] for _ in range(5)]
    presenter, newcomer = link_tracks(detections_per_frame)
    assert set(_positions_x(presenter).values()) == {400.0}
    assert set(_positions_x(newcomer).values()) == {570.0}
    assert newcomer.frame_positions == [5, 6, 7, 8, 9, 10]


def test_a_small_face_on_a_screen_behind_a_presenter_is_its_own_person():
    # The screen's face (45 px) shows now and then beside the presenter's (120 px).
    detections_per_frame = [
        [_face(400.0 + step, 300.0, side=120.0)]
        + ([_face(500.0, 220.0, side=45.0, det_prob=0.93)] if step % 5 == 0 else [])
        for step in range(32)
    ]
    presenter, on_screen = link_tracks(detections_per_frame)
    assert len(presenter.detections) == 32
    assert on_screen.frame_positions == [0, 5, 10, 15, 20, 25, 30]


def test_a_restless_head_with_missed_detections_stays_one_person():
    # A random walk of about a third of a face size per sample, with one detection in five
    # missed: the tolerance grows with the gap, as the walk's spread does.
    rng = np.random.default_rng(0)
    center_x, center_y = 500.0, 300.0
    detections_per_frame: list[list[Detection]] = []
    for _ in range(32):
        center_x += rng.normal(0.0, 35.0)
        center_y += rng.normal(0.0, 18.0)
        side = 100.0 * rng.uniform(0.9, 1.1)
        detected = rng.uniform() > 0.2
        detections_per_frame.append([_face(center_x, center_y, side=side)] if detected else [])
    (track,) = link_tracks(detections_per_frame)
    assert len(track.detections) == sum(len(frame) for frame in detections_per_frame)


def test_face_side_is_the_shorter_side_inside_the_frame_median_over_frames():
    assert visible_side_px((10.0, 20.0, 60.0, 90.0), 144, 176) == 50.0  # 50 x 70: the width
    # Cut by the left edge: only 15 px of its 50 px width are in the frame.
    assert visible_side_px((-35.0, 20.0, 15.0, 90.0), 144, 176) == 15.0
    assert visible_side_px((-90.0, 20.0, -10.0, 90.0), 144, 176) == 0.0  # wholly outside
    sides = {0: 40.0, 1: 50.0, 3: 90.0}
    track = Track(0, {position: _face(50.0, 50.0, side=side) for position, side in sides.items()})
    assert track.face_side_px([(144, 176)] * 4) == 50.0
