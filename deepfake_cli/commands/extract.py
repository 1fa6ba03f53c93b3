"""`mattn extract-faces DATASET -o FACES`: the work is `extract.extract_faces`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepfake_cli.commands._errors import report_problems, user_errors
from deepfake_cli.commands._help import epilog
from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO

EXTRACT_EPILOG = epilog(
    [
        "mattn extract-faces /data/FaceForensics++ -o faces/ --splits /data/ff-splits",
        "mattn extract-faces /data/Celeb-DF-v2 -o faces/ --workers 4",
        "# Your own videos in real/ and fake/ folders, as JPEG crops:",
        "mattn extract-faces my-videos/ -o faces/ --format jpg",
        "# One slice per array job, all writing one faces folder:",
        "mattn extract-faces /data/dfdc -o faces/ --shard 2/16",
        "# The authors' frames (0..499), cut as the weights b4.safetensors expect:",
        "mattn extract-faces ffpp/ -o faces/ --frames paper --weights b4.safetensors",
    ],
    notes=[
        "The output folder holds crops/, manifest.csv (one row per crop: video, label, method, "
        "split) and summary.json; `mattn train --data` reads it."
    ],
)


@user_errors
def extract_faces_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="Dataset folder: FaceForensics++, Celeb-DF, DFDC or real/fake folders.",
            show_default=False,
        ),
    ],
    *,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Folder for crops/, manifest.csv and summary.json (resumes if it has them).",
            show_default=False,
        ),
    ],
    layout: Annotated[
        str, typer.Option(help="Dataset layout: auto, ffpp, celebdf, dfdc or folders.")
    ] = "auto",
    compression: Annotated[
        str, typer.Option(help="FaceForensics++ level: c23, c40 or raw (others ignore it).")
    ] = "c23",
    splits_dir: Annotated[
        Path | None,
        typer.Option(
            "--splits", help="Folder with FaceForensics++'s official train/val/test.json."
        ),
    ] = None,
    frames: Annotated[
        str,
        typer.Option(
            help="Frames sampled evenly over each video (with --every: at most), or paper: "
            "every frame of the first 500, what the authors' recipe trains and evaluates on."
        ),
    ] = "32",
    every: Annotated[
        int | None, typer.Option(help="Take every k-th frame from the start instead.")
    ] = None,
    crop_size: Annotated[
        int | None,
        typer.Option(
            help="Crop side in pixels (default 440: a little larger than the model's 380 "
            "input, so training can random-crop).",
        ),
    ] = None,
    margin_ratio: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help=f"Crop square side over the face box's longer side (default "
            f"{DEFAULT_MARGIN_RATIO:g}; with --weights, set by the weights).",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Cut the crops these weights expect (.safetensors or the authors' .pth): their "
            "centre input-size pixels are what scan feeds that model.",
        ),
    ] = None,
    align: Annotated[
        bool,
        typer.Option("--align", help="Rotate crops so the eyes are level (match your weights)."),
    ] = False,
    image_format: Annotated[str, typer.Option("--format", help="Crop files: png or jpg.")] = "png",
    jpeg_quality: Annotated[int, typer.Option("--quality", help="JPEG quality, 1-100.")] = 95,
    workers: Annotated[
        int, typer.Option(help="Processes detecting faces in parallel (CPU; CUDA uses one).")
    ] = 1,
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Share of identity groups put in val where the layout has no official split."
        ),
    ] = 0.1,
    test_fraction: Annotated[
        float,
        typer.Option(
            help="Share of identity groups put in test where the layout has no official split."
        ),
    ] = 0.1,
    split_seed: Annotated[int, typer.Option(help="Seed of the deterministic split.")] = 0,
    group_by: Annotated[
        str,
        typer.Option(
            help="Identity groups of real/fake folders: file (each alone) or name-prefix "
            "(the file name before the first _, e.g. one person's photos)."
        ),
    ] = "file",
    limit: Annotated[
        int | None, typer.Option(help="Only the first N videos (originals before fakes).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="K/N: only the K-th of N slices (a fake with its original)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Face detector device: cpu, cuda, cuda:N or auto.")
    ] = "cpu",
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Seconds a video may take to decode.")
    ] = 120.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")
    ] = False,
) -> None:
    """Cut face crops out of a deepfake dataset and write a manifest for training.

    The same crops as `mattn scan`; fakes reuse their original's boxes. Rerun it to resume.
    """
    # Imported here so that `mattn --help` does not load torch and MTCNN.
    from deepfake_cli.extract import extract_faces

    summary = extract_faces(
        dataset,
        output,
        layout=layout,
        compression=compression,
        splits_dir=splits_dir,
        frames=frames,
        every=every,
        crop_size=crop_size,
        margin_ratio=margin_ratio,
        align=align,
        weights=weights,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        workers=workers,
        limit=limit,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
        group_by=group_by,
        shard=shard,
        device=device,
        timeout_s=timeout_s,
        progress=not quiet,
    )

    if quiet:
        return
    per_split = ", ".join(f"{split} {count}" for split, count in summary.videos_by_split.items())
    resumed = f", {summary.videos_resumed} from an earlier run" if summary.videos_resumed else ""
    print(
        f"Wrote {summary.crops} crops of {summary.videos_extracted} videos "
        f"({per_split or 'none'}{resumed}) to {summary.manifest_path}."
    )
    if summary.skipped:
        report_problems(
            f"Skipped {len(summary.skipped)} video(s); reasons in {summary.summary_path}:",
            [f"{skipped.video}: {skipped.reason}" for skipped in summary.skipped],
        )
