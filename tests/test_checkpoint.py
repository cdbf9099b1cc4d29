"""Checkpoints are written whole or not at all; one that cannot be read is moved aside, never a dead end."""

import errno
import os

import pytest
import torch
from fasttrain.rank import checkpoint as ckpt
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset


class Tiny(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        return DataLoader(TensorDataset(torch.randn(64, 4, generator=g), torch.randint(2, (64,), generator=g)), 8)


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def fit(folder, max_steps, ckpt_path=None):
    trainer = Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        plugins=[ckpt.AtomicCheckpointIO()],
        callbacks=[
            ModelCheckpoint(
                dirpath=str(folder), every_n_train_steps=1, save_top_k=0, save_last=True, enable_version_counter=False
            )
        ],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), ckpt_path=ckpt_path)
    return trainer


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    fit(folder, max_steps=2)
    return (folder / "last.ckpt").read_bytes()


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_saved_checkpoint_resumes_and_leaves_no_temporary(tmp_path, good_checkpoint):
    (tmp_path / "last.ckpt").write_bytes(good_checkpoint)
    resume = ckpt.usable_checkpoint(tmp_path / "last.ckpt")
    assert resume == tmp_path / "last.ckpt"
    trainer = fit(tmp_path, max_steps=3, ckpt_path=str(resume))
    assert trainer.global_step == 3 and files(tmp_path) == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 3


def test_no_checkpoint_means_from_scratch(tmp_path):
    assert ckpt.usable_checkpoint(tmp_path / "last.ckpt") is None
    assert ckpt.usable_checkpoint(tmp_path / "no-such-folder" / "last.ckpt") is None


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda good: good[: len(good) * 2 // 3], "not a whole zip archive"),  # a disk that filled up mid-copy
        (lambda good: b"", "the file is empty"),
        (lambda good: b"this is not a checkpoint\n" * 100, "not a whole zip archive"),
    ],
    ids=["truncated", "empty", "garbage"],
)
def test_unreadable_checkpoint_is_moved_aside_and_the_job_starts_afresh(
    tmp_path, good_checkpoint, capsys, damage, problem
):
    last = tmp_path / "last.ckpt"
    last.write_bytes(damage(good_checkpoint))
    bad_bytes = last.read_bytes()
    assert ckpt.usable_checkpoint(last) is None
    out = capsys.readouterr().out
    assert f"checkpoint {last} cannot be read ({problem}" in out
    assert f"moved it aside to {last}.corrupt-1 and starting from scratch" in out
    assert files(tmp_path) == ["last.ckpt.corrupt-1"] and (tmp_path / "last.ckpt.corrupt-1").read_bytes() == bad_bytes
    # Not a dead end: the job trains from step 0 and writes a new, whole checkpoint.
    trainer = fit(tmp_path, max_steps=2, ckpt_path=ckpt.usable_checkpoint(last))
    assert trainer.global_step == 2 and ckpt.checkpoint_problem(last) is None


def test_a_second_corrupt_checkpoint_gets_the_next_name(tmp_path, capsys):
    for _ in range(2):
        (tmp_path / "last.ckpt").write_bytes(b"")
        ckpt.usable_checkpoint(tmp_path / "last.ckpt")
    assert files(tmp_path) == ["last.ckpt.corrupt-1", "last.ckpt.corrupt-2"]
    assert "last.ckpt.corrupt-2 and starting from scratch" in capsys.readouterr().out


def test_a_checksum_failure_inside_the_archive_is_found(tmp_path, good_checkpoint):
    damaged = bytearray(good_checkpoint)
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(64)  # a flipped block inside some entry; the zip frame is intact
    (tmp_path / "last.ckpt").write_bytes(bytes(damaged))
    assert ckpt.checkpoint_problem(tmp_path / "last.ckpt") is not None


class FillsUpHalfWay:
    """A file whose disk fills up after half of the first write."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(bytes(data[: len(data) // 2]))
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_full_disk_mid_save_keeps_the_old_checkpoint_and_says_so(tmp_path, good_checkpoint, monkeypatch):
    last = tmp_path / "last.ckpt"
    last.write_bytes(good_checkpoint)
    real_fdopen = os.fdopen
    monkeypatch.setattr(ckpt.os, "fdopen", lambda *a, **k: FillsUpHalfWay(real_fdopen(*a, **k)))
    with pytest.raises(ckpt.CheckpointWriteError) as info:
        fit(tmp_path, max_steps=4, ckpt_path=str(last))
    message = str(info.value)
    assert f"Cannot write checkpoint {last}: the disk holding {tmp_path} is full" in message
    assert f"the previous checkpoint {last} is unchanged" in message and "df -h" in message
    assert info.value.errno == errno.ENOSPC
    assert last.read_bytes() == good_checkpoint and files(tmp_path) == ["last.ckpt"]  # no temporary left


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", refuse)
    with pytest.raises(ckpt.CheckpointWriteError, match=f"{tmp_path} cannot be written .* set out_dir"):
        ckpt.write_atomically(tmp_path / "last.ckpt", b"data")


def test_temporary_left_by_a_killed_writer_is_removed(tmp_path, good_checkpoint):
    (tmp_path / "last.ckpt").write_bytes(good_checkpoint)
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(good_checkpoint[:100])
    assert ckpt.usable_checkpoint(tmp_path / "last.ckpt") == tmp_path / "last.ckpt"
    assert files(tmp_path) == ["last.ckpt"]


def test_room_for_checkpoints_is_checked_before_training(tmp_path, monkeypatch):
    from collections import namedtuple

    from conftest import cpu_config

    config = cpu_config(checkpoint_every_steps=2)
    assert ckpt.checkpoint_bytes(config) > 1_000_000
    ckpt.check_room_for_checkpoints(tmp_path / "checkpoints", config)  # made, written, room enough
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(
        ckpt.CheckpointWriteError, match=f"{tmp_path / 'checkpoints'} has 0 MiB free, but .* need about"
    ):
        ckpt.check_room_for_checkpoints(tmp_path / "checkpoints", config)
    ckpt.check_room_for_checkpoints(tmp_path / "checkpoints", cpu_config(checkpoint_every_steps=0))  # none written


def test_unwritable_checkpoint_folder_is_found_before_training(tmp_path, monkeypatch):
    from conftest import cpu_config

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt.tempfile, "TemporaryFile", refuse)
    with pytest.raises(ckpt.CheckpointWriteError, match=f"Cannot write checkpoints to {tmp_path} .*set out_dir"):
        ckpt.check_room_for_checkpoints(tmp_path, cpu_config(checkpoint_every_steps=2))
