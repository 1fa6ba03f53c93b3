"""`mattn weights import | info | export`: the work is in `model.authors`, `.weights`, `.export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepfake_cli.commands._errors import user_errors
from deepfake_cli.commands._help import epilog

WEIGHTS_EPILOG = epilog(
    [
        "mattn weights import ff_c23_b4.pth weights/mat-b4-ffpp.safetensors",
        "mattn weights info weights/mat-b4-ffpp.safetensors",
        "mattn weights export weights/mat-b4-ffpp.safetensors mat-b4-ffpp.onnx",
    ]
)
EXPORT_EPILOG = epilog(
    [
        "mattn weights export weights/mat-b4-ffpp.safetensors mat-b4-ffpp.onnx",
        "mattn scan clip.mp4 --backend onnxruntime --weights mat-b4-ffpp.onnx",
    ],
    notes=[
        "Needs the ONNX extra (pip install 'mattn[onnx]'). The file has a dynamic batch axis; its "
        "metadata carries the preprocessing, the provenance and the source file's sha256, and it "
        "is checked against torch with onnxruntime (max |delta p| <= 1e-3) before it is written."
    ],
)
IMPORT_EPILOG = epilog(
    [
        "mattn weights import ff_c23_b4.pth weights/mat-b4-ffpp.safetensors",
        "mattn weights import ff_c23_b4.pth b4.safetensors --name 'MAT B4, FF++ c23'",
        "mattn weights import ff_c23_b4.pth b4-m125.safetensors --margin 1.25",
    ],
    notes=[
        "The checkpoint is read with torch.load(weights_only=True), so no code in it runs; "
        "the configuration is read off its tensor shapes.",
        "The crop geometry (margin 1.3 x the face box, upright) is an estimate of the authors' "
        "RetinaFace crops (docs/model.md); --margin records another one, which scan, "
        "extract-faces --weights and evaluate then use.",
    ],
)
INFO_EPILOG = epilog(
    [
        "mattn weights info weights/mat-b4-ffpp.safetensors",
        "mattn weights info runs/b4/best.safetensors --json | jq .provenance",
    ]
)


@user_errors
def import_command(
    checkpoint: Annotated[Path, typer.Argument(help="The authors' .pth checkpoint.")],
    output: Annotated[Path, typer.Argument(help="Where to write the mattn .safetensors file.")],
    *,
    input_size: Annotated[
        int | None, typer.Option(help="Input size the model was trained at (default: native).")
    ] = None,
    margin_ratio: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help="Crop square side over the face box's longer side the model is fed "
            "(default: 1.3, the estimate of the authors' crops).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name recorded in the file.")] = None,
) -> None:
    """Convert an authors'-format MAT checkpoint (read with weights_only=True) to mattn weights."""
    # Imported here so that `mattn --help` does not load torch.
    from deepfake_cli.model.authors import import_and_save

    written = import_and_save(
        checkpoint, output, input_size=input_size, margin_ratio=margin_ratio, name=name
    )
    preprocessing = written.preprocessing
    print(
        f"wrote {written.path} ({written.config.backbone}, {written.num_parameters:,} parameters, "
        f"crops {preprocessing.input_size} px at margin {preprocessing.margin_ratio:g}, "
        f"sha256 {written.sha256})"
    )


@user_errors
def info_command(
    path: Annotated[Path, typer.Argument(help="A mattn .safetensors weights file.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show what a weights file is: config, preprocessing, provenance, parameters, sha256."""
    from deepfake_cli.model.weights import read_weights_info

    info = read_weights_info(path)
    if as_json:
        print(json.dumps(info.to_dict(), indent=2))
        return
    console = Console()
    provenance = info.provenance
    console.print(f"[bold]{provenance.name}[/bold]  ({info.path})", highlight=False)
    if provenance.demo:
        console.print(
            "[yellow]DEMO MODEL: shows the pipeline working; not validated on deepfake "
            "benchmarks.[/yellow]"
        )
    console.print(f"sha256      {info.sha256}", highlight=False)
    console.print(f"parameters  {info.num_parameters:,}", highlight=False)
    console.print(f"source      {provenance.source}", highlight=False)
    console.print(f"trained on  {provenance.trained_on}", highlight=False)
    threshold = provenance.decision_threshold
    console.print(
        "threshold   "
        + (
            f"{threshold:.4f} (calibrated on validation; scan's default --threshold)"
            if threshold is not None
            else "not calibrated (scan uses 0.5)"
        ),
        highlight=False,
    )
    if provenance.metrics:
        console.print(f"metrics     {json.dumps(provenance.metrics)}", highlight=False)
    if provenance.notes:
        console.print(f"notes       {provenance.notes}", highlight=False)
    console.print("model config:", highlight=False)
    for key, value in info.config.to_dict().items():
        console.print(f"  {key:<20}{value}", highlight=False)
    console.print("preprocessing:", highlight=False)
    for key, value in info.preprocessing.to_dict().items():
        console.print(f"  {key:<20}{value}", highlight=False)


@user_errors
def export_command(
    weights: Annotated[Path, typer.Argument(help="A mattn .safetensors weights file.")],
    output: Annotated[Path, typer.Argument(help="Where to write the .onnx file.")],
    *,
    opset: Annotated[int, typer.Option(help="ONNX opset of the exported graph.")] = 18,
) -> None:
    """Export weights to ONNX (fp32, dynamic batch), checked against torch before writing."""
    from deepfake_cli.model.export import export_onnx

    exported = export_onnx(weights, output, opset=opset)
    print(
        f"wrote {exported.path} (opset {exported.opset}, max |delta p| vs torch "
        f"{exported.max_probability_delta:.1e} at batch sizes "
        f"{', '.join(map(str, exported.batch_sizes_checked))}; source sha256 "
        f"{exported.source_sha256})"
    )
