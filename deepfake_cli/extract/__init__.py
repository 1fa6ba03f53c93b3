"""`mattn extract-faces`: a deepfake dataset -> face crops + a manifest that `mattn train` reads.

The crops come from the same stages as `mattn scan` (video -> frames -> faces -> persons ->
crops), so a model is trained on exactly the kind of crop it is later asked to judge:

    datasets.list_videos   labelled, split list of videos (one module per dataset layout)
    video.FrameReader      sampled frames, decoded in a killable worker process
    faces.FaceDetector     MTCNN boxes, probabilities and 5-point landmarks
    tracks.link_tracks     one track per person, as scan links them
    crops.crop_tracks      the one crop loop scan, extract and train share

Pairing (as the DFDC winner did): a fake made from a real video that is in the dataset is
cropped with the real video's boxes, at the same frame indices, so the real and the fake crop
show the same square of the same frame. Originals are therefore extracted before their fakes.

Resume: every crop is written to a temporary file and renamed; once all crops of a video are
on disk, a done-record `.progress/<hash of video_id>.json` holding the video's manifest rows
(and its face tracks, for its fakes) is written the same way. A rerun skips videos with a
done-record made with the same settings and redoes the rest, so a run that is killed at any
moment and restarted ends with the same manifest.csv as one that never stopped; manifest.csv
and summary.json are assembled from the done-records at the end. Videos that fail (no face,
undecodable) get no done-record: a rerun tries them again, and they are listed with their
reason in summary.json.

The modules, in the order a run uses them:

    run.py          extract_faces: options -> plan -> resume -> extract -> manifest, summary
    plan.py         crop settings; which videos, originals before their fakes, shards
    records.py      done-records: resuming, and the original's faces a fake reuses
    workers.py      running the plan here or in a pool of worker processes
    video_crops.py  one video: frames -> faces -> crop files -> its done-record
    outputs.py      manifest.csv (through `deepfake_cli.manifest`) and summary.json
"""

from deepfake_cli.extract.outputs import SkippedVideo
from deepfake_cli.extract.plan import (
    CROP_SIZE_OVER_INPUT,
    IMAGE_FORMATS,
    MAX_FACES_PER_FRAME,
    CropSettings,
    crop_folder_for,
    default_crop_size,
)
from deepfake_cli.extract.records import done_record_path
from deepfake_cli.extract.run import ExtractSummary, extract_faces

__all__ = [
    "CROP_SIZE_OVER_INPUT",
    "IMAGE_FORMATS",
    "MAX_FACES_PER_FRAME",
    "CropSettings",
    "ExtractSummary",
    "SkippedVideo",
    "crop_folder_for",
    "default_crop_size",
    "done_record_path",
    "extract_faces",
]
