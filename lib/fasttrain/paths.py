"""Where the course keeps what it produces, wherever a notebook or job is started from."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """build/ at the top of the course (FASTTRAIN_BUILD_DIR overrides): executed notebooks, records, figures."""
    return Path(os.environ.get("FASTTRAIN_BUILD_DIR") or REPO_ROOT / "build")


def profile_dir(profile: str) -> Path:
    """build/<profile>/: the build folder itself where it already is one profile's (`make course` sets
    FASTTRAIN_BUILD_DIR=build/<profile>), else its subfolder of that name."""
    base = build_dir()
    return base if base.name == profile else base / profile


def runs_dir() -> Path:
    return build_dir() / "runs"


def figures_dir() -> Path:
    path = build_dir() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reference_dir(device: str | None = None) -> Path:
    """Result records from real GPU runs, committed with the hardware they ran on; given the device's
    name (torch.cuda.get_device_name), its own folder, e.g. results/reference/nvidia-h100-80gb-hbm3."""
    base = REPO_ROOT / "results" / "reference"
    return base / re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") if device else base
