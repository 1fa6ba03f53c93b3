"""`mattn scan`: parse the options into a `ScanRequest`; the work is `scan.run_scan`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepfake_cli.aggregate import DEFAULT_MIN_PRESENCE
from deepfake_cli.commands._errors import user_errors
from deepfake_cli.commands._help import WEIGHTS_ENV, epilog
from deepfake_cli.errors import UsageError

SCAN_EPILOG = epilog(
    [
        "mattn scan --example",
        "mattn scan clip.mp4",
        "# One JSON object per video as each finishes; a rerun skips what is done:",
        "mattn scan videos/ --format jsonl --output results.jsonl --resume",
        "# Paths on stdin, slice 3 of 8 of a corpus (one array job):",
        "find /data -name '*.mp4' | mattn scan - --shard 3/8 --format csv",
        "# The evidence: one HTML page per video, with attention maps:",
        "mattn scan clip.mp4 --report report/",
        "# An exported model on onnxruntime (mattn weights export):",
        "mattn scan clip.mp4 --weights mat.onnx",
        "# On a GPU: 12 decoding processes, faces of 16 videos per batch:",
        "mattn scan videos/ --device cuda --decode-workers 12 --video-batch 16",
    ],
    notes=[
        "Exit codes: 0 = every file scanned and none judged FAKE; 1 = at least one judged FAKE; "
        "2 = at least one file could not be scanned (takes precedence over 1), or a usage "
        "error. A video without a face is reported as no_face and is not an error. So is a "
        "video whose faces are all too small or too briefly seen to judge (--min-face, "
        "--min-presence)."
    ],
)


@user_errors
def scan_command(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Video files, folders (searched recursively), or - for paths on stdin.",
            show_default=False,
        ),
    ] = None,
    *,
    example: Annotated[
        bool, typer.Option("--example", help="Also scan the two example clips shipped with mattn.")
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option(
            envvar=WEIGHTS_ENV,
            help="mattn .safetensors weights or an authors' .pth (default: bundled demo).",
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames sampled evenly per video.")] = 32,
    start: Annotated[float | None, typer.Option(help="Sample from this time (seconds).")] = None,
    end: Annotated[float | None, typer.Option(help="Sample until this time (seconds).")] = None,
    max_faces: Annotated[int, typer.Option(help="Faces scored per frame, largest first.")] = 4,
    min_face: Annotated[
        int | None,
        typer.Option(
            help="Persons whose face is smaller (pixels, shorter side of the face box inside "
            "the frame) are reported, not judged (default: from the model's input size; 24 for "
            "the bundled 160 px model, 49 for a 380 px one).",
            show_default=False,
        ),
    ] = None,
    min_presence: Annotated[
        float,
        typer.Option(
            help="Persons found in fewer than this share of the sampled frames are reported, "
            "not judged."
        ),
    ] = DEFAULT_MIN_PRESENCE,
    aggregate: Annotated[
        str, typer.Option(help="Frame-to-video rule: mean, median, topk, confident, weighted.")
    ] = "mean",
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Fake probability at or above which a video is FAKE (default: the weights' "
            "calibrated threshold, else 0.5)."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Faces per detector batch (default: 64 on CUDA; on the CPU by the model's "
            "input size, 16 for the bundled 160 px model, 2 for 380 px)."
        ),
    ] = None,
    decode_workers: Annotated[
        int | None,
        typer.Option(
            help="Processes decoding videos at once (default: 1 on the CPU; on a GPU one per "
            "core but one, at most 16).",
            show_default=False,
        ),
    ] = None,
    video_batch: Annotated[
        int | None,
        typer.Option(
            help="Videos whose faces are found and scored together, for larger batches "
            "(default: 1 on the CPU, 8 on a CUDA GPU).",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (onnxruntime for an .onnx --weights, else torch), torch, onnxruntime "
            "or openvino (an .onnx --weights on OpenVINO's CPU plugin)."
        ),
    ] = "auto",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the detector: slower start, faster per face (large batches).",
        ),
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people), json, jsonl or csv.")
    ] = "table",
    output: Annotated[Path | None, typer.Option(help="Write results to this file.")] = None,
    details: Annotated[
        bool, typer.Option(help="Add per-frame boxes and scores (json/jsonl).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Skip videos already in the --output JSONL file.")
    ] = False,
    shard: Annotated[
        str | None, typer.Option(help="Scan only slice K of N (e.g. 1/4), for array jobs.")
    ] = None,
    glob: Annotated[
        str | None, typer.Option(help="File-name pattern for folders (default: video extensions).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a video whose decoding hangs is given up.")
    ] = 120.0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write self-contained HTML reports (index.html + a page per video)."),
    ] = None,
    save_attention: Annotated[
        Path | None,
        typer.Option(help="With --report: also write attention maps (.npy) and overlays (.png)."),
    ] = None,
) -> None:
    """Judge whether the faces in videos are deepfakes."""
    # Imported here so that `mattn --help` does not load torch.
    from deepfake_cli.scan import ScanOptions, ScanRequest, run_scan

    try:
        options = ScanOptions(
            frames=frames,
            start_s=start,
            end_s=end,
            max_faces=max_faces,
            min_face_px=min_face,
            min_presence=min_presence,
            aggregate=aggregate,
            threshold=threshold,
            timeout_s=timeout if timeout > 0 else None,
            details=details,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    request = ScanRequest(
        inputs=tuple(inputs or ()),
        example=example,
        options=options,
        weights=weights,
        device=device,
        precision=precision,
        batch_size=batch_size,
        decode_workers=decode_workers,
        video_batch=video_batch,
        backend=backend,
        compile=compile_model,
        output_format=output_format,
        output=output,
        resume=resume,
        shard=shard,
        glob=glob,
        quiet=quiet,
        report_dir=report,
        save_attention_dir=save_attention,
    )
    raise typer.Exit(run_scan(request))
