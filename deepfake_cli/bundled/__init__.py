"""What ships inside the package: the default weights and the example clips.

Read through `importlib.resources`, so they are found in an editable checkout, an installed
wheel and a pipx environment alike. The weights' model card is `weights/README.md` in the
repository; the clips' sources and licences are in `examples/README.md` here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled_dir() -> Path:
    """This folder on disk (mattn is installed as plain files, never run from a zip)."""
    return Path(str(files(__name__)))


def examples_dir() -> Path:
    """The example clips of the README's first command, `mattn scan --example`."""
    return bundled_dir() / "examples"
