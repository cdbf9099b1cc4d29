"""The result record: one JSON file per training job, everything a chapter plots or a reader checks.

A record is written atomically (temporary file, then rename), so a crash while writing never leaves
a half-written file that looks finished. Records carry the environment they ran in, so a figure
from a laptop is never mistaken for one from an H100.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def code_version() -> str:
    """The git commit of the course (with '+dirty' for local changes), or 'unknown'.

    Informational (records carry it); reuse of finished runs goes by training_source_hash instead.
    FASTTRAIN_CODE_VERSION wins: a copy of the tree without .git (a GPU box, a container) sets it."""
    if os.environ.get("FASTTRAIN_CODE_VERSION"):
        return os.environ["FASTTRAIN_CODE_VERSION"]
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except Exception:
        return "unknown"


# The source a rank runs: fasttrain.run and what it imports (a test checks this list against the modules a
# rank actually loads). Chapters' analyses, the launcher and the grader change no result.
TRAINING_SOURCES = (
    "run.py",
    "rank",
    "config.py",
    "config_checks.py",
    "devices.py",
    "intervals.py",
    "paths.py",
    "references.py",
    "results.py",
    "rundir.py",
)


def training_source_hash() -> str:
    """A hash of the training code's source: finished runs are reused only by the code that trains them."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in TRAINING_SOURCES:
        path = here / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(here)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(devices: Iterable[Any] = ()) -> dict[str, Any]:
    import lightning
    import torch

    env = dict(
        host=socket.gethostname(),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        lightning=lightning.__version__,
        cuda=torch.version.cuda,
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        code_version=code_version(),
        code_hash=training_source_hash(),
    )
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_record(record: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"schema": SCHEMA_VERSION, **record}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_jsonable))
    os.replace(tmp, path)
    return path


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    record = json.loads(path.read_text())
    if record.get("schema") != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has record schema {record.get('schema')}, this code reads "
            f"{SCHEMA_VERSION}; re-run the job to refresh it."
        )
    return record


def load_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record under a folder (e.g. results/reference/), oldest first."""
    records = [read_record(p) for p in sorted(Path(folder).rglob("*.json"))]
    return sorted(records, key=lambda r: r.get("created", ""))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
