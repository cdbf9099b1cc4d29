"""What a rank works out the same way in every job, kept between jobs on this machine: a decoded data file,
a model's FLOP count. Each entry is keyed by everything its value depends on, so a hit is exactly what
the work would have given; an entry that cannot be read or written is worked out again, never an error.

The cache lives in ~/.cache/fasttrain (or $XDG_CACHE_HOME/fasttrain), beside the downloaded data, so
every job, test and notebook on the machine shares it; delete the folder at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fasttrain"


def key_of(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def cached_array(content: bytes, decode: Callable[[], np.ndarray], kind: str) -> np.ndarray:
    """decode(), or the array it gave for the same bytes before: the key is the content's hash, so a copy
    of a file hits and a changed or damaged one misses (and decode reports it)."""
    path = cache_dir() / kind / f"{hashlib.sha256(content).hexdigest()[:32]}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        pass
    array = decode()
    _write(path, lambda f: np.save(f, array, allow_pickle=False))
    return array


def cached_number(key: str, compute: Callable[[], int], kind: str) -> int:
    """compute(), or the value it gave for the same key before."""
    path = cache_dir() / kind / f"{key}.json"
    try:
        return int(json.loads(path.read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    _write(path, lambda f: f.write(json.dumps({"value": value}).encode()))
    return value


def _write(path: Path, write: Callable) -> None:
    """Whole or not at all (a temporary file, then a rename): two ranks may write one entry at once."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
            temporary = f.name
            write(f)
        os.replace(temporary, path)
    except OSError:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
