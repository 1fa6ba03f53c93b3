"""The GPU suite (benchmarks/gpu_suite.sh and its Python parts) still runs, at its smallest, on
the CPU: CI has no GPU, but it can check that the suite has not rotted before a GPU machine
needs it. Each test takes under a minute on two idle cores (the training one is marked slow:
it starts `mattn train` twice and `mattn evaluate` once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def environment(tmp_path: Path) -> dict[str, str]:
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(paths),
        # Empty folders: no wheels to install, and nothing shared with other runs.
        "WHEELS": str(tmp_path / "wheels"),
        "MATTN_SUITE_SITE": str(tmp_path / "site"),
        "CUDA_VISIBLE_DEVICES": "",  # the small settings, even on a machine with a GPU
    }


@pytest.mark.skipif(shutil.which("bash") is None, reason="the suite is a bash script")
def test_gpu_suite_small_runs_every_section_on_the_cpu(tmp_path):
    command = ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--small", "--skip-train"]
    command += ["--videos", "1", "--seconds", "1", "--frames", "4", "--workers", "1"]
    command += ["--batch-sizes", "4", "--work", str(tmp_path / "work")]
    done = subprocess.run(
        command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    output = done.stdout
    assert done.returncode == 0, output[-3000:] + done.stderr[-3000:]
    lines = output.splitlines()
    sections = {line.split()[0] for line in lines if line.strip()}
    assert {"wheels", "mattn", "env", "clips", "e2e", "detector", "mtcnn", "stages"} <= sections
    assert {"memory", "nvdec", "suite"} <= sections
    assert any("videos/s" in line for line in lines if line.startswith("e2e"))
    assert any("faces/s" in line for line in lines if line.startswith("detector"))
    assert any("frames/s" in line for line in lines if line.startswith("mtcnn"))
    # Every decoder has its line, whether it is installed, fails or runs.
    nvdec = "\n".join(line for line in lines if line.startswith("nvdec"))
    for decoder in ("PyAV (CPU, exact)", "PyNvVideoCodec", "DALI", "decord-gpu", "torchcodec-cuda"):
        assert decoder in nvdec
    assert lines[-1].startswith("suite") and "PASS" in lines[-1]


@pytest.mark.slow
def test_gpu_train_smoke_kills_resumes_and_evaluates_on_the_cpu(tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_train_smoke.py"), "--device", "cpu"]
    command += ["--processes", "1", "--epochs", "2", "--input-size", "32", "--videos", "2"]
    command += ["--work", str(tmp_path)]
    done = subprocess.run(
        command, cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = {line.split()[1]: line.split()[0] for line in done.stdout.splitlines()[1:-1]}
    expected = ("data", "train", "resume", "weights", "evaluate", "grad-scaler")
    assert steps == dict.fromkeys(expected, "PASS"), done.stdout
    assert done.stdout.splitlines()[-1].startswith("PASS: training smoke test")
