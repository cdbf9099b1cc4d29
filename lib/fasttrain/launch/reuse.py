"""Finished work is kept: a run folder's record is reused when the same config was trained by the same
training code (the source a rank runs, results.training_source_hash), whatever git says about the tree
around it: a saved notebook, a README commit or a new chapter leave every finished run reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasttrain import rundir
from fasttrain.config import TrainConfig
from fasttrain.results import read_record, training_source_hash


def finished_record(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The run folder's record if it is a finished run of this config by this training code, else None.

    Records are written whole or not at all (results.write_record); a leftover temporary file, an
    unreadable or foreign record is never taken as finished."""
    try:
        record = read_record(Path(run_dir) / rundir.RECORD)
        same_config = rundir.config_hash(TrainConfig.from_dict(record["config"]).to_dict()) == rundir.config_hash(
            config.to_dict()
        )
        same_code = record["environment"].get("code_hash") == training_source_hash()
        finished = record["steps"] >= 1 and len(record["loss"]["values"]) == record["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if same_config and same_code and finished else None
