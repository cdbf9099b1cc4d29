import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "ci"))


@pytest.fixture(autouse=True)
def _isolated_build(tmp_path, monkeypatch):
    """Every test writes its runs, records and figures under its own temporary build/ folder."""
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path / "build"))
    yield


def cpu_config(**overrides):
    """The smallest real job: smoke profile on the CPU."""
    from fasttrain.config import TrainConfig

    values = dict(
        accelerator="cpu", max_steps=6, val_every_steps=0, timing_warmup_steps=1, train_samples=1024, val_samples=256
    )
    values.update(overrides)
    return TrainConfig.from_profile("smoke", **values)
