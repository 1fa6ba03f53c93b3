"""A wheel built from the project carries the default model and the examples, and scans.

This is what `pip install .`, a wheel from an index or pipx gives a user: no repository on
sys.path, only the installed package. The wheel is built from a copy of the project's package
files (so the checkout gets no build/ or egg-info), installed with `pip --target`, and run in a
fresh interpreter from a folder outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
#: A wheel that needs more is a wheel a user should not have to download.
MAX_WHEEL_BYTES = 100 * 1024 * 1024

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPOSITORY / name, source / name)
    shutil.copytree(
        REPOSITORY / "deepfake_cli",
        source / "deepfake_cli",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the test environment's setuptools builds it, with no network.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(out), "-q"],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("mattn-*.whl")
    return built


def test_the_wheel_carries_the_default_weights_and_the_examples(wheel: Path) -> None:
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.startswith("deepfake_cli/bundled/") and n.endswith(".safetensors") for n in names)
    assert "deepfake_cli/bundled/examples/real_carphone.mp4" in names
    assert "deepfake_cli/bundled/examples/fake_carphone_selfblend.mp4" in names
    assert any(n.startswith("deepfake_cli/report/templates/") for n in names)


def test_the_installed_wheel_scans_the_examples_without_the_repository(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "2"}
    environment.pop("MATTN_WEIGHTS", None)
    where = subprocess.run(
        [sys.executable, "-c", "import deepfake_cli; print(deepfake_cli.__file__)"],
        cwd=outside,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)  # not the checkout
    scan = subprocess.run(
        [sys.executable, "-m", "deepfake_cli", "scan", "--example", "--format", "json", "--quiet"],
        cwd=outside,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert scan.returncode in (0, 1), scan.stderr
    results = {Path(row["path"]).name: row for row in json.loads(scan.stdout)}
    assert set(results) == {"real_carphone.mp4", "fake_carphone_selfblend.mp4"}
    for row in results.values():
        assert row["status"] == "ok" and Path(row["path"]).is_relative_to(site)
