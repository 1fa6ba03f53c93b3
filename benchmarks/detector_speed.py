"""P0: mattn's scorer against the authors' arithmetic, per backend, in one run.

The reference is the computation the authors' code does at inference: mattn's own MAT (the
fidelity tests show it is bit-identical to theirs) in fp32, NCHW, eager, with the authors'
padding, at batch 4. Against it, on the same crops and weights:

- torch: `FaceScorer` as `mattn scan` runs it (inference form: folded batch norms, fused SiLU,
  split texture block; channels_last; precision `auto`, i.e. bf16 weights where the CPU has
  fast bf16 and the first batch shows |delta p| <= 0.01; its default batch size);
- torch + compile (`--compile`): the same through `torch.compile`, with its compile time;
- onnxruntime (`--onnx`): the exported inference form in fp32 on onnxruntime's CPU provider,
  with the export time;
- OpenVINO (when the `openvino` package is installed; not a mattn dependency): the same ONNX
  file compiled for OpenVINO's CPU plugin, once with inference precision f32 and once with the
  plugin's default (bf16 on CPUs with AMX), to decide whether a `--backend openvino` pays.

Each line gives seconds per face (best of `--repeats`), the speed-up over the reference and
max |delta fake_probability| against it. Weights are random (a trained B4 is not shipped),
with batch-norm statistics spread away from the identity so that a wrong fold would show.

    python benchmarks/detector_speed.py                      # B4 at 380, torch and onnxruntime
    python benchmarks/detector_speed.py --compile --faces 16
    python benchmarks/detector_speed.py --backbone efficientnet-b0 --input-size 128
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from deepfake_cli.device import prefer_passive_openmp

prefer_passive_openmp()  # before torch loads, as `mattn scan` does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepfake_cli.crops import normalize_crops  # noqa: E402
from deepfake_cli.model import MATConfig, Preprocessing, build_detector, save_weights  # noqa: E402
from deepfake_cli.model.mat import fake_probabilities  # noqa: E402
from deepfake_cli.model.weights import load_detector  # noqa: E402
from deepfake_cli.scoring import FaceScorer  # noqa: E402


def make_weights(path: Path, backbone: str, input_size: int) -> Path:
    torch.manual_seed(0)
    model = build_detector(MATConfig(backbone=backbone, input_size=input_size, legacy_padding=True))
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) * 0.2 - 0.1)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
    save_weights(model, path, preprocessing=Preprocessing(input_size=input_size))
    return path


def best_seconds(run, repeats: int) -> float:
    run()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def reference_probabilities(model, crops: np.ndarray, mean, std) -> np.ndarray:
    """The authors' arithmetic: fp32, NCHW, eager, batch 4."""
    results = []
    with torch.inference_mode():
        for start in range(0, len(crops), 4):
            batch = normalize_crops(crops[start : start + 4], mean, std)
            results.append(fake_probabilities(model(batch)))
    return torch.cat(results).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet-b4")
    parser.add_argument("--input-size", type=int, default=380)
    parser.add_argument("--faces", type=int, default=8, help="crops scored per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="of the torch scorer")
    parser.add_argument("--batch-size", type=int, default=None, help="of the scorers")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime backend")
    arguments = parser.parse_args()

    print(
        f"{arguments.backbone} at {arguments.input_size} px, {arguments.faces} faces, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as work:
        weights = make_weights(
            Path(work) / "bench.safetensors", arguments.backbone, arguments.input_size
        )
        model = load_detector(weights).eval()
        preprocessing = model.preprocessing
        size = arguments.input_size
        crops = np.random.default_rng(0).integers(
            0, 256, (arguments.faces, size, size, 3), dtype=np.uint8
        )
        reference = reference_probabilities(model, crops, preprocessing.mean, preprocessing.std)
        reference_s = best_seconds(
            lambda: reference_probabilities(model, crops, preprocessing.mean, preprocessing.std),
            arguments.repeats,
        )
        per_face = reference_s / len(crops)
        print(f"reference (fp32, NCHW, eager, batch 4): {per_face:.4f} s/face")

        def report(name: str, seconds: float, probabilities: np.ndarray, extra: str = "") -> None:
            delta = float(np.abs(probabilities - reference).max())
            print(
                f"P0 {name}: {seconds / len(crops):.4f} s/face, {reference_s / seconds:.2f}x "
                f"the reference, max |dp| = {delta:.4f}{extra}"
            )

        scorer = FaceScorer(
            load_detector(weights), precision=arguments.precision, batch_size=arguments.batch_size
        )
        scorer.score(crops[:1])  # `auto` decides its precision on the first batch
        seconds = best_seconds(lambda: scorer.score(crops), arguments.repeats)
        report(
            f"torch ({scorer.precision_name}, batch {scorer.batch_size})",
            seconds,
            scorer.score(crops),
        )

        if arguments.compile:
            compiled = FaceScorer(
                load_detector(weights),
                precision=scorer.precision_name,
                batch_size=scorer.batch_size,
                compile=True,
            )
            started = time.perf_counter()
            compiled.score(crops[: compiled.batch_size])
            compile_s = time.perf_counter() - started
            seconds = best_seconds(lambda: compiled.score(crops), arguments.repeats)
            report(
                f"torch.compile ({compiled.precision_name}, batch {compiled.batch_size})",
                seconds,
                compiled.score(crops),
                f"; compile + first batch {compile_s:.1f} s",
            )

        if not arguments.no_onnx:
            from deepfake_cli.model.export import export_onnx
            from deepfake_cli.scoring import OnnxFaceScorer

            started = time.perf_counter()
            exported = export_onnx(weights, Path(work) / "bench.onnx")
            export_s = time.perf_counter() - started
            onnx_scorer = OnnxFaceScorer(exported.path, batch_size=arguments.batch_size)
            seconds = best_seconds(lambda: onnx_scorer.score(crops), arguments.repeats)
            report(
                f"onnxruntime (fp32, batch {onnx_scorer.batch_size})",
                seconds,
                onnx_scorer.score(crops),
                f"; export {export_s:.1f} s",
            )
            openvino_rows(
                exported.path, crops, preprocessing, onnx_scorer.batch_size, report, arguments
            )


def openvino_rows(
    onnx_path: Path, crops, preprocessing, batch_size: int, report, arguments
) -> None:
    """OpenVINO's CPU plugin on the exported file, at f32 and at the plugin's default precision."""
    try:
        import openvino
    except ImportError:
        print("P0 openvino: not installed (pip install openvino to measure it)")
        return
    from deepfake_cli.device import compile_for_openvino_cpu

    core = openvino.Core()
    for hint in ("f32", None):
        config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
        started = time.perf_counter()
        compiled = compile_for_openvino_cpu(core, str(onnx_path), config)  # as mattn compiles
        compile_s = time.perf_counter() - started
        precision = hint or compiled.get_property("INFERENCE_PRECISION_HINT").to_string()

        def score(compiled=compiled) -> np.ndarray:
            results = []
            for start in range(0, len(crops), batch_size):
                batch = normalize_crops(
                    crops[start : start + batch_size], preprocessing.mean, preprocessing.std
                )
                logits = compiled(batch.numpy())[0]  # (B, 2)
                results.append(fake_probabilities(torch.from_numpy(np.asarray(logits))))
            return torch.cat(results).numpy()

        seconds = best_seconds(score, arguments.repeats)
        label = "default " + precision if hint is None else precision
        report(
            f"openvino {openvino.__version__.split('-')[0]} ({label}, batch {batch_size})",
            seconds,
            score(),
            f"; compile {compile_s:.1f} s",
        )


if __name__ == "__main__":
    main()
