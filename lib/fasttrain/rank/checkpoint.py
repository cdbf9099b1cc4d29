"""Checkpoints written whole or not at all, and a checkpoint that cannot be read never a dead end.

Lightning's own "atomic" save goes through fsspec, which on a local disk writes a temporary file in
the system temporary folder and then *copies* it over when the run folder is on another filesystem:
a full disk then leaves a truncated `last.ckpt`, and every re-run fails reading it. Here the
temporary file sits in the checkpoint's own folder, is flushed and fsynced, then `os.replace`d
over the old one (a rename: atomic on POSIX filesystems), and the folder is fsynced so the rename
itself survives a power cut.

    Trainer(plugins=[AtomicCheckpointIO()], ...)
    resume_from = usable_checkpoint(folder / "last.ckpt")   # None: start from scratch
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TEMP_SUFFIX = ".tmp"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous whole checkpoint, if any, is still in place."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, whose local saves go through `write_atomically`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            # Object stores (s3://, gs://...) have no rename; fsspec's transaction is their atomic write.
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised first: only the file write can fail half-way
        write_atomically(Path(path), buffer.getbuffer())


def write_atomically(path: Path, data) -> None:
    """Write `data` (bytes) to `path` whole or not at all: temporary file beside it, fsync, rename."""
    folder = path.parent
    temp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        temp = None
        _fsync_folder(folder)
    except OSError as exc:
        raise CheckpointWriteError(exc.errno, _write_error_message(path, exc)) from exc
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some filesystems (and non-POSIX systems) cannot open a folder: skip there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error_message(path: Path, exc: OSError) -> str:
    kept = f"the previous checkpoint {path} is unchanged" if path.exists() else f"no checkpoint was left at {path}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"the disk holding {path.parent} is full ({exc.strerror})"
        todo = f"free space there (df -h {path.parent}), or point out_dir at a bigger disk, and run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"{path.parent} cannot be written ({exc.strerror})"
        todo = "set out_dir to a folder you can write, and run again"
    else:
        what = f"writing it failed ({exc.strerror or exc})"
        todo = "check the disk, and run again"
    return (
        f"Cannot write checkpoint {path}: {what}; {kept}. To go on, {todo} (checkpoint_every_steps=0: no checkpoints)."
    )


# ---------------------------------------------------------------------- reading back
def checkpoint_problem(path: Path) -> str | None:
    """Why `path` is not a checkpoint torch can load (None: it is one)."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
        with zipfile.ZipFile(path) as archive:  # torch.save's format; a truncated file has no central directory
            bad = archive.testzip()  # reads every entry and checks its CRC
        if bad is not None:
            return f"entry {bad} fails its checksum"
        torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # our own file: unpickling is safe
    except zipfile.BadZipFile as exc:
        return f"not a whole zip archive ({exc}): truncated or not a checkpoint"
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, UnpicklingError, ...
        return f"{type(exc).__name__}: {exc}"
    return None


def usable_checkpoint(path, say: Callable[[str], None] | None = None) -> Path | None:
    """`path` if it is a checkpoint that loads; None if there is none. One that cannot be read is moved
    aside to `<name>.corrupt-<n>` (kept for a post-mortem) with a message, and the job starts from scratch.
    Every rank may call it: the one whose move succeeds says so; all of them get None."""
    path = Path(path)
    _remove_stale_temporaries(path)
    if not path.exists():
        return None
    problem = checkpoint_problem(path)
    if problem is None:
        return path
    aside = _free_name(path)
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another rank of this node moved it first
        return None
    (say or _print)(
        f"checkpoint {path} cannot be read ({problem}); moved it aside to {aside} and starting from scratch "
        "(delete it once you no longer need it)."
    )
    return None


def _free_name(path: Path) -> Path:
    n = 1
    while path.with_name(f"{path.name}.corrupt-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.corrupt-{n}")


def _remove_stale_temporaries(path: Path) -> None:
    """A writer killed mid-save (SIGKILL, power cut) leaves its temporary file; it is never a checkpoint."""
    if path.parent.is_dir():
        for temp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                temp.unlink()


def _print(message: str) -> None:
    print(f"[fasttrain] {message}", flush=True)


# ---------------------------------------------------------------------- before training
def checkpoint_bytes(config) -> int:
    """About how big the job's checkpoint is: fp32 weights and optimizer state (and a little bookkeeping)."""
    from fasttrain.config_checks import resnet50_parameters

    params = resnet50_parameters(config.num_classes, config.in_channels, config.width, config.small_input)
    state = 2 if config.optimizer == "adamw" else 1
    return params * 4 * (1 + state) + 2**20


def check_room_for_checkpoints(folder, config) -> None:
    """Before training: the checkpoint folder can be written and has room for a checkpoint and its
    temporary copy, so a job does not find out at its first checkpoint, minutes in."""
    if not config.checkpoint_every_steps:
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CheckpointWriteError(
            exc.errno,
            f"Cannot write checkpoints to {folder} ({exc.strerror}): set out_dir to a folder you can write "
            "(or checkpoint_every_steps=0: no checkpoints).",
        ) from None
    need, free = 2 * checkpoint_bytes(config), shutil.disk_usage(folder).free
    if free < need:
        raise CheckpointWriteError(
            errno.ENOSPC,
            f"{folder} has {free / 2**20:,.0f} MiB free, but the job's checkpoints need about {need / 2**20:,.0f} MiB "
            f"(one checkpoint and its temporary copy): free space there (df -h {folder}), set out_dir to a bigger "
            "disk, or checkpoint_every_steps=0.",
        )


def checkpoint_callback(config, folder: Path, recorder):
    """Lightning's ModelCheckpoint (only last.ckpt, every N steps), its saving time taken off the step clock."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    class OffTheClockCheckpoint(ModelCheckpoint):
        """A checkpoint is bookkeeping, not training: its time is left out of the next step's. At a step
        that validates it saves after the validation, so a resumed job keeps that accuracy; at the last
        step not at all (the record is the finished work)."""

        deferred = False

        def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
            step = trainer.global_step
            if step >= config.max_steps:
                return
            if config.val_every_steps and step % config.val_every_steps == 0:
                self.deferred = step % config.checkpoint_every_steps == 0
                return
            started = time.perf_counter()
            super().on_train_batch_end(trainer, *args, **kwargs)
            recorder.exclude_time(time.perf_counter() - started)

        def on_validation_end(self, trainer, pl_module) -> None:
            super().on_validation_end(trainer, pl_module)
            if self.deferred and not trainer.sanity_checking:
                self.deferred = False
                trainer.save_checkpoint(self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST))

    return OffTheClockCheckpoint(
        dirpath=str(folder),
        every_n_train_steps=config.checkpoint_every_steps,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
