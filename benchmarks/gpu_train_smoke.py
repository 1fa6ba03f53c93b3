"""The GPU training path end to end: a tiny MAT with AMP, killed mid-run, resumed, evaluated.

Every step uses mattn's own commands and functions on a faces folder of synthetic face crops
written here with `deepfake_cli.manifest` (as `mattn extract-faces` writes one, so no face
detector is needed):

1. data      - the faces folder: train (real + fake), val and test splits.
2. train     - `mattn train --stage 2` (the MAT: RIL, AGDA) of EfficientNet-B0 at 64 px, with
               `--amp` on CUDA (bf16 autocast where supported, else fp16 with a GradScaler) and
               fp32 on the CPU; under torchrun with one process per GPU when there are several
               (NCCL, SyncBatchNorm; gloo on the CPU). Killed with SIGKILL, process group and
               all, as soon as the first epoch's training state is on disk.
3. resume    - `mattn train --out RUN --resume` finishes the run: every epoch logged once, all
               ranks in sync.
4. weights   - last.safetensors loads with `load_detector`, equals the final training state and
               scores a batch with finite outputs.
5. grad-scaler - the loop's own `train_one_epoch` with fp16 autocast and an enabled GradScaler
               (`mattn train` picks bf16 on GPUs that have it, so this path is otherwise never
               taken there), then the scaler's state through save -> load -> restore. On the CPU,
               where fp16 autocast is emulated (~20 s a step), the scaler runs on fp32.
6. evaluate  - `mattn evaluate --split test --format json`.

Prints one PASS / FAIL / SKIP line per step with its seconds, then a summary; exits 1 if a step
failed. Runs on a bare GPU machine without network (efficientnet-pytorch and PyAV must be
installed; see docs/gpu.md). On two CPU cores the same steps take a minute or two:

    python benchmarks/gpu_train_smoke.py              # CUDA if present, else the CPU (small)
    python benchmarks/gpu_train_smoke.py --processes 1 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from synthetic_faces import make_faces

REPO = Path(__file__).resolve().parent.parent
STAGE = 2  # the MAT itself: attention maps, RIL centres, AGDA


@dataclass
class Step:
    name: str
    status: str = "FAIL"  # PASS, FAIL or SKIP
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Smoke:
    """Where the run lives and how each `mattn` process is launched."""

    work: Path
    device: str  # "cuda" or "cpu"
    processes: int
    epochs: int
    batch_size: int
    input_size: int
    steps: list[Step] = field(default_factory=list)

    @property
    def faces(self) -> Path:
        return self.work / "faces"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    def mattn(self, *arguments: str) -> list[str]:
        """The command line of a `mattn` subcommand; training under torchrun when distributed."""
        if arguments[0] == "train" and self.processes > 1:
            launcher = ["-m", "torch.distributed.run", "--standalone"]
            launcher += [f"--nproc_per_node={self.processes}"]
            return [sys.executable, *launcher, "-m", "deepfake_cli", *arguments]
        return [sys.executable, "-m", "deepfake_cli", *arguments]

    def environment(self) -> dict[str, str]:
        paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        if self.device == "cpu":
            environment.setdefault("OMP_NUM_THREADS", "1")  # one thread a process: no contention
        return environment


# --- the steps -----------------------------------------------------------------------------------


def run_step(smoke: Smoke, name: str, action) -> Step:
    """Run `action() -> (status, detail)`, timed; an exception is a FAIL with its message."""
    step = Step(name)
    started = time.perf_counter()
    try:
        step.status, step.detail = action()
    except Exception as error:  # noqa: BLE001 - a smoke test reports every failure, then goes on
        step.status, step.detail = "FAIL", f"{type(error).__name__}: {error}"
    step.seconds = time.perf_counter() - started
    smoke.steps.append(step)
    print(f"{step.status:4}  {name:12} {step.seconds:6.1f} s  {step.detail}", flush=True)
    return step


def log_tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join("        | " + line for line in text.splitlines()[-lines:])


def train_and_kill(smoke: Smoke) -> tuple[str, str]:
    from deepfake_cli.training.checkpoint import load_training_state, state_path

    arguments = [
        "train", "--data", str(smoke.faces), "--out", str(smoke.run_dir), "--stage", str(STAGE),
        "--backbone", "efficientnet-b0", "--input-size", str(smoke.input_size),
        "--epochs", str(smoke.epochs), "--batch-size", str(smoke.batch_size),
        "--frames-per-video", "8", "--synthetic-fakes", "self-blend", "--lr", "1e-3",
        "--device", smoke.device, "--amp" if smoke.device == "cuda" else "--no-amp",
        "--workers", "2" if smoke.device == "cuda" else "0", "--name", "gpu-smoke", "--demo",
        "--config", str(smoke.work / "smoke.toml"),
    ]  # fmt: skip
    # A run of a few steps: BatchNorm statistics must move faster than efficientnet-pytorch's
    # 0.01 lets them, or validation in eval mode sees the untrained ones (docs/training.md).
    (smoke.work / "smoke.toml").write_text("bn_momentum = 0.1\n")
    log_path = smoke.work / "train-killed.log"
    with open(log_path, "wb") as log:
        # A session of its own, so that SIGKILL reaches torchrun, every rank and their loaders.
        process = subprocess.Popen(
            smoke.mattn(*arguments), stdout=log, stderr=subprocess.STDOUT,
            env=smoke.environment(), cwd=smoke.work, start_new_session=True,
        )  # fmt: skip
    state_file = state_path(smoke.run_dir)
    deadline = time.monotonic() + 600
    while not state_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None:
        return "FAIL", f"the run ended (exit {process.returncode}) before it could be killed\n" + (
            log_tail(log_path)
        )
    if not state_file.exists():
        os.killpg(process.pid, signal.SIGKILL)
        return "FAIL", "no checkpoint within 600 s\n" + log_tail(log_path)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    state = load_training_state(smoke.run_dir)
    finished = state["epoch"] + 1
    if finished >= smoke.epochs:
        return "FAIL", f"killed only after the last epoch ({finished}); raise --epochs"
    first_line = next(
        (line for line in log_path.read_text(errors="replace").splitlines() if "device" in line),
        "",
    )
    detail = f"SIGKILL after epoch {finished} of {smoke.epochs}; {first_line.strip()}"
    if smoke.device == "cuda" and not ("bfloat16" in first_line or "float16" in first_line):
        return "FAIL", detail + " (no autocast on CUDA)"
    # The first line names the BatchNorm of a distributed run (training/runlog.describe_run).
    if smoke.device == "cuda" and smoke.processes > 1 and "SyncBatchNorm" not in first_line:
        return "FAIL", detail + " (several GPUs, but no SyncBatchNorm)"
    return "PASS", detail


def resume(smoke: Smoke) -> tuple[str, str]:
    log_path = smoke.work / "train-resumed.log"
    with open(log_path, "wb") as log:
        done = subprocess.run(
            smoke.mattn("train", "--out", str(smoke.run_dir), "--resume"), stdout=log,
            stderr=subprocess.STDOUT, env=smoke.environment(), cwd=smoke.work, timeout=900,
        )  # fmt: skip
    if done.returncode != 0:
        return "FAIL", f"exit {done.returncode}\n" + log_tail(log_path)
    rows = [json.loads(line) for line in (smoke.run_dir / "log.jsonl").read_text().splitlines()]
    epochs = [(row["stage"], row["epoch"]) for row in rows]
    expected = [(STAGE, epoch) for epoch in range(1, smoke.epochs + 1)]
    if epochs != expected:
        return "FAIL", f"log rows {epochs}, expected {expected}"
    if smoke.processes > 1 and not all(row.get("ranks_in_sync") for row in rows):
        return "FAIL", "ranks out of sync: " + str([row.get("ranks_in_sync") for row in rows])
    missing = [
        name for name in ("last", "best") if not (smoke.run_dir / f"{name}.safetensors").exists()
    ]
    if missing:
        return "FAIL", f"no {', '.join(missing)}.safetensors"
    speed = ", ".join(f"{row['images_per_s']:.0f}" for row in rows)
    sync = "; ranks in sync" if smoke.processes > 1 else ""
    return (
        "PASS",
        f"epochs {epochs[0][1]}..{epochs[-1][1]} logged once each{sync}; images/s {speed}",
    )


def weights_load(smoke: Smoke) -> tuple[str, str]:
    import torch

    from deepfake_cli.crops import normalize_crops
    from deepfake_cli.model.weights import load_detector
    from deepfake_cli.training.checkpoint import load_training_state

    device = torch.device(smoke.device)
    model = load_detector(smoke.run_dir / "last.safetensors", device=device)
    final_state = load_training_state(smoke.run_dir)["model"]
    loaded = model.state_dict()
    shared = [key for key in final_state if key in loaded]
    differing = [key for key in shared if not torch.equal(loaded[key].cpu(), final_state[key])]
    if not shared or differing:
        return "FAIL", f"{len(differing)} of {len(shared)} tensors differ from the final state"
    size = model.preprocessing.input_size
    crops = np.random.default_rng(1).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        preprocessing = model.preprocessing
        batch = normalize_crops(crops, preprocessing.mean, preprocessing.std, device=device)
        logits = model(batch)  # (8, 2)
    if tuple(logits.shape) != (8, 2) or not bool(torch.isfinite(logits).all()):
        return "FAIL", f"logits {tuple(logits.shape)}, finite {bool(torch.isfinite(logits).all())}"
    spread = float(logits.float().std(0).max())  # a network that lost its input gives 0
    if spread == 0:
        return "FAIL", "the same logits for every crop"
    shared_text = f"{len(shared)} tensors = final training state"
    return "PASS", f"{shared_text}; {size} px; finite logits that depend on the crop"


def grad_scaler(smoke: Smoke) -> tuple[str, str]:
    import dataclasses
    from functools import partial

    import torch
    from rich.console import Console

    from deepfake_cli.device import resolve_device
    from deepfake_cli.model.step import mat_training_step
    from deepfake_cli.training import checkpoint, distributed, loop, setup
    from deepfake_cli.training.data import FacesData
    from deepfake_cli.training.runlog import EpochProgress
    from deepfake_cli.training.settings import resolve_config

    out = smoke.work / "scaler-run"
    settings = {
        "data": str(smoke.faces), "out": str(out), "stage": STAGE, "backbone": "efficientnet-b0",
        "input_size": smoke.input_size, "device": smoke.device, "workers": 0, "epochs": 1,
        "batch_size": smoke.batch_size, "frames_per_video": 2, "synthetic_fakes": "self-blend",
    }  # fmt: skip
    config = resolve_config(settings)
    runtime = distributed.Runtime(device=resolve_device(smoke.device))
    fp16 = smoke.device == "cuda"  # fp16 autocast on the CPU is emulated: ~20 s a step
    precision = setup.Precision(smoke.device, torch.float16 if fp16 else None)

    def scaled_trainee() -> setup.Trainee:
        model, _ = setup.build_model(config, STAGE, resume_state=None, run_dir=out)
        trainee = setup.build_trainee(model, config, config.stage2, runtime)
        scaler = torch.amp.GradScaler(smoke.device, enabled=True)
        return dataclasses.replace(trainee, precision=precision, scaler=scaler)

    trainee = scaled_trainee()
    data = FacesData.load(smoke.faces)
    loader, class_weights = setup.epoch_loader(config, data, runtime, 0, smoke.batch_size)
    step = partial(
        mat_training_step, weights=setup.loss_weights(config), use_agda=config.agda,
        class_weights=class_weights,
    )  # fmt: skip
    progress = EpochProgress(Console(quiet=True), enabled=False, total=len(loader), title="")
    sums, seen = loop.train_one_epoch(trainee, loader, step, runtime, progress)
    losses = {name: value / max(seen, 1) for name, value in sums.items()}
    parameters_finite = all(bool(torch.isfinite(p).all()) for p in trainee.model.parameters())
    if not seen or not all(np.isfinite(list(losses.values()))) or not parameters_finite:
        return "FAIL", f"{seen} images, losses {losses}, parameters finite {parameters_finite}"
    scale = trainee.scaler.get_scale()
    checkpoint.save_training_state(
        out, model=trainee.model, optimizer=trainee.optimizer, scheduler=trainee.scheduler,
        scaler=trainee.scaler, stage=STAGE, epoch=0, best_metric=None, config=config.to_dict(),
        rng_states=[checkpoint.rng_state()],
    )  # fmt: skip
    restored = scaled_trainee()
    setup.restore_training_state(restored, checkpoint.load_training_state(out), runtime)
    if restored.scaler.get_scale() != scale:
        return "FAIL", f"scale {scale} saved, {restored.scaler.get_scale()} restored"
    kind = "fp16 autocast" if fp16 else "fp32 (CPU: fp16 autocast is emulated)"
    return "PASS", (
        f"{kind}, {seen} images, loss {losses['loss']:.3f}; scale {scale:g} survives "
        "save -> load -> restore"
    )


def evaluate(smoke: Smoke, test_crops: int) -> tuple[str, str]:
    done = subprocess.run(
        smoke.mattn(
            "evaluate", "--data", str(smoke.faces), "--weights",
            str(smoke.run_dir / "best.safetensors"), "--split", "test", "--format", "json",
            "--device", smoke.device,
        ),
        capture_output=True, text=True, env=smoke.environment(), cwd=smoke.work, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        return "FAIL", f"exit {done.returncode}: {done.stderr.strip()[-800:]}"
    report = json.loads(done.stdout)
    video, frame = report["overall"]["video"], report["overall"]["frame"]
    if report["frames"] != test_crops or video["auc"] is None:
        return "FAIL", f"{report['frames']} of {test_crops} crops scored, video AUC {video['auc']}"
    return "PASS", (
        f"{report['videos']} videos, {report['frames']} crops: video AUC {video['auc']:.3f}, "
        f"frame AUC {frame['auc']:.3f} (random-init B0 after {smoke.epochs} epochs: any value)"
    )


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--small", action="store_true", help="the CPU's sizes on any device")
    parser.add_argument(
        "--processes", type=int, default=None,
        help="training processes (default: one per GPU; 2 on the CPU, gloo)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="default: 4 on CUDA, 3 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 / 4 per process")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--videos", type=int, default=None, help="train videos (default 12 / 4)")
    parser.add_argument("--work", type=Path, default=None, help="keep the files here")
    arguments = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available() if arguments.device == "auto" else arguments.device == "cuda"
    device = "cuda" if cuda else "cpu"
    gpus = torch.cuda.device_count() if cuda else 0
    processes = arguments.processes or (gpus if cuda else 2)
    large = cuda and not arguments.small
    train_videos = arguments.videos or (12 if large else 4)
    frames = 8 if large else 4
    work = arguments.work or Path(tempfile.mkdtemp(prefix="mattn-gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    smoke = Smoke(
        work=work,
        device=device,
        processes=processes,
        epochs=arguments.epochs or (4 if large else 3),
        batch_size=arguments.batch_size or (32 if large else 4),
        input_size=arguments.input_size,
    )
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {os.cpu_count()} cores"
    backend = ("NCCL, SyncBatchNorm" if cuda else "gloo") if processes > 1 else "one process"
    print(
        f"mattn GPU training smoke test: {where}; torch {torch.__version__}; {processes} "
        f"process(es) ({backend}); B0 at {smoke.input_size} px, batch {smoke.batch_size}, "
        f"{smoke.epochs} epochs; files in {work}",
        flush=True,
    )

    side = round(smoke.input_size * 1.15)  # stored crops a little larger, as extract-faces
    fakes = max(1, train_videos // 3)
    videos = [(f"train_real{i}", 0, "train") for i in range(train_videos - fakes)]
    videos += [(f"train_fake{i}", 1, "train") for i in range(fakes)]
    for split in ("val", "test"):
        videos += [(f"{split}_real{i}", 0, split) for i in range(2)]
        videos += [(f"{split}_fake{i}", 1, split) for i in range(2)]
    test_crops = 4 * frames

    def data() -> tuple[str, str]:
        crops = make_faces(smoke.faces, videos, frames, side)
        return "PASS", f"{len(videos)} videos, {crops} crops of {side} px"

    # Each step needs the one before it, except the GradScaler step, which needs only the data.
    chain = [
        ("data", data),
        ("train", lambda: train_and_kill(smoke)),
        ("resume", lambda: resume(smoke)),
        ("weights", lambda: weights_load(smoke)),
        ("evaluate", lambda: evaluate(smoke, test_crops)),
    ]
    broken = None
    for name, action in chain:
        if broken is None:
            broken = None if run_step(smoke, name, action).status == "PASS" else name
        else:
            run_step(smoke, name, lambda broken=broken: ("SKIP", f"needs {broken}"))
    if smoke.steps[0].status == "PASS":
        run_step(smoke, "grad-scaler", lambda: grad_scaler(smoke))

    failed = [step.name for step in smoke.steps if step.status == "FAIL"]
    total = sum(step.seconds for step in smoke.steps)
    summary = ", ".join(f"{step.name} {step.status}" for step in smoke.steps)
    verdict = "FAIL" if failed else "PASS"
    print(f"{verdict}: training smoke test ({summary}) in {total:.0f} s", flush=True)
    if failed:
        print(f"logs kept in {work}")
    elif arguments.work is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
