"""LightningDataModules: synthetic (throughput), Fashion-MNIST (real, offline), ImageFolder (disk).

Every rank reads its own shard. We build the DistributedSampler ourselves (the Trainer runs with
`use_distributed_sampler=False`) so that one process and N processes walk the *same* global
permutation: step k of an N-rank job sees exactly the images that step k of a 1-rank job sees,
which is what makes "DDP gives the same weights as one process" testable. A job resumed from a
checkpoint continues the permutation where it stopped, so it sees the batches an unbroken job would.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from fasttrain.config import ConfigError, TrainConfig
from fasttrain.rank.cache import cached_array

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


class DataNotFoundError(FileNotFoundError):
    """The data set is not on this machine; the message names every way to get it."""


class DataError(ConfigError):
    """Data that is there but cannot train this job: a damaged or unreadable file, or ImageFolder classes
    and channels that do not match each other or the config. The message names the path and what to do."""


_GET_A_WHOLE_COPY = (
    "delete it and get a whole copy: run with download=True (the default) to fetch one into "
    "~/.cache/fasttrain/fashion-mnist (delete that whole folder if the file was in it), or, for Debian's copy "
    f"in {FASHION_MNIST_DEBIAN}, sudo apt-get install --reinstall dataset-fashion-mnist"
)


# ---------------------------------------------------------------------- Fashion-MNIST
def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of MNIST and Fashion-MNIST. A file is decompressed once per
    machine: later jobs load the decoded copy of the same bytes (rank/cache.py)."""
    try:
        content = _read_file(path)
    except (PermissionError, IsADirectoryError) as exc:
        raise DataError(
            f"Cannot read {path} ({exc.strerror}): give this user read permission (chmod a+r {path}) "
            "or point data_dir at a copy you can read."
        ) from None
    except OSError as exc:
        raise DataError(f"{path} is damaged ({type(exc).__name__}: {exc}); {_GET_A_WHOLE_COPY}.") from None
    if path.suffix != ".gz":
        return _decode_idx(path, content)
    return cached_array(content, lambda: _decode_idx(path, _gunzip(path, content)), "idx")


def _read_file(path: Path) -> bytes:
    return path.read_bytes()


def _gunzip(path: Path, content: bytes) -> bytes:
    try:
        return gzip.decompress(content)
    except (EOFError, OSError, zlib.error) as exc:  # a gzip stream cut short, or not gzip at all (BadGzipFile)
        raise DataError(f"{path} is damaged ({type(exc).__name__}: {exc}); {_GET_A_WHOLE_COPY}.") from None


def _decode_idx(path: Path, data: bytes) -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is damaged: not an unsigned-byte IDX file (wrong file?); {_GET_A_WHOLE_COPY}.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DataError(
            f"{path} is damaged: its header says {shape} but it holds {array.size} bytes (truncated?); "
            f"{_GET_A_WHOLE_COPY}."
        )
    return array.reshape(shape)


def _fashion_mnist_folder(data_dir: str | None, download: bool) -> Path:
    if data_dir and not Path(data_dir).exists():  # a typo must not silently train on another copy
        raise DataNotFoundError(
            f"data_dir={data_dir} does not exist. Point it at a folder holding the four Fashion-MNIST "
            f"*-ubyte.gz files, or leave it unset (None) to use {FASHION_MNIST_DEBIAN} or a download "
            "(sudo apt-get install dataset-fashion-mnist, or download=True)."
        )
    candidates = [Path(data_dir)] if data_dir else []
    candidates += [Path(FASHION_MNIST_DEBIAN), Path.home() / ".cache/fasttrain/fashion-mnist"]
    for folder in candidates:
        for sub in (folder, folder / "FashionMNIST" / "raw"):
            if all((sub / name).exists() for pair in FASHION_MNIST_FILES.values() for name in pair):
                return sub
    tried = ", ".join(str(c) for c in candidates)
    if download:
        root = Path.home() / ".cache/fasttrain/fashion-mnist"
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
            return root / "FashionMNIST" / "raw"
        except Exception as exc:  # offline: URLError, socket errors, ...
            reason = f"the download failed too ({type(exc).__name__}: {exc})"
    else:
        reason = "download=False, so no download was tried"
    raise DataNotFoundError(
        f"Fashion-MNIST was not found (looked in {tried}) and {reason}.\n"
        "Get it one of two ways:\n"
        "  1. offline, from Debian's package: sudo apt-get install dataset-fashion-mnist "
        f"(installs {FASHION_MNIST_DEBIAN}; `make setup` does this)\n"
        "  2. online: run with download=True (the default) and torchvision fetches it into "
        "~/.cache/fasttrain/fashion-mnist\n"
        "Or point data_dir at a folder holding the four *-ubyte.gz files."
    )


def load_fashion_mnist(split: str, data_dir: str | None = None, download: bool = True):
    """Images (N, 28, 28) uint8 and labels (N,) int64 as tensors."""
    folder = _fashion_mnist_folder(data_dir, download)
    images_file, labels_file = FASHION_MNIST_FILES[split]
    images = torch.from_numpy(read_idx(folder / images_file).copy())
    labels = torch.from_numpy(read_idx(folder / labels_file).astype(np.int64))
    return images, labels


class InMemoryImages(Dataset):
    """uint8 images kept in memory, normalised a whole batch at a time (`dataset[list_of_indices]`)."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, image_size: int, in_channels: int, mean: float, std: float
    ):
        self.images, self.labels = images, labels
        self.image_size, self.in_channels = image_size, in_channels
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        x = self.images[index].float().div_(255).sub_(self.mean).div_(self.std).unsqueeze(1)
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x, self.labels[index]


class ShardSampler(Sampler):
    """Rank r of n takes every n-th index, in order, without padding: exact validation counts."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumingBatchSampler(BatchSampler):
    """A BatchSampler whose first pass can start part-way: a job resumed mid-epoch goes on with the batch
    after the last one it trained on, instead of the epoch's first batches again."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, skip_first: int = 0):
        super().__init__(sampler, batch_size, drop_last)
        self.skip_first = skip_first

    def __iter__(self):
        batches = super().__iter__()
        skip, self.skip_first = self.skip_first, 0  # only the first pass after resuming
        for _ in range(skip):
            next(batches, None)
        return batches  # len() stays the epoch's: Lightning's restored batch count goes on from the skip

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at each epoch's start; without it every epoch would repeat one shuffle."""
        self.sampler.set_epoch(epoch)


class _ShardedDataModule(LightningDataModule):
    """Loaders that hand each rank its shard of one shared, seeded permutation."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world
        per_rank = self.config.per_device_batch_size
        if len(self.train_set) < per_rank * world:
            raise ValueError(
                f"The training set has {len(self.train_set)} images, fewer than one "
                f"global batch of {per_rank * world}; lower global_batch_size."
            )
        sampler = DistributedSampler(
            self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=self.config.seed, drop_last=True
        )
        batches = ResumingBatchSampler(sampler, per_rank, drop_last=True)
        # After a restored checkpoint Lightning's step and epoch counts are back, and it sets the
        # sampler's epoch (the permutation); the position in that epoch follows from the step count.
        step = getattr(self.trainer, "global_step", 0) if self.trainer else 0
        batches.skip_first = step * self.config.grad_accumulation % len(batches)
        return self._loader(self.train_set, batches)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world
        sampler = ShardSampler(len(self.val_set), rank, world)
        return self._loader(self.val_set, BatchSampler(sampler, 512, drop_last=False))

    def full_test_set(self) -> Dataset:
        """Every image of the held-out split (the validation set may be a fixed subset of it)."""
        return self.val_set

    def _loader(self, dataset: Dataset, batch_sampler: BatchSampler) -> DataLoader:
        # Whole batches come out of dataset[list]; worker processes would only add start-up time.
        return DataLoader(dataset, sampler=batch_sampler, batch_size=None, num_workers=0)


class FashionMNISTDataModule(_ShardedDataModule):
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test images, 28x28 grey, 10 classes."""

    def setup(self, stage: str | None = None) -> None:
        c = self.config
        download = c.download
        for split in ("train", "val"):
            images, labels = load_fashion_mnist(split, c.data_dir, download)
            limit = c.train_samples if split == "train" else c.val_samples
            if limit is not None:
                # A fixed, seeded subset, the same on every rank and in every run.
                keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))[:limit]
                images, labels = images[keep], labels[keep]
            dataset = InMemoryImages(images, labels, c.image_size, c.in_channels, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
            setattr(self, f"{split}_set", dataset)

    def full_test_set(self) -> Dataset:
        c = self.config
        images, labels = load_fashion_mnist("val", c.data_dir, c.download)
        return InMemoryImages(images, labels, c.image_size, c.in_channels, FASHION_MNIST_MEAN, FASHION_MNIST_STD)


class SyntheticLabels(Dataset):
    def __init__(self, length: int, num_classes: int, seed: int):
        self.labels = torch.randint(num_classes, (length,), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.labels[index]


class SyntheticDataModule(_ShardedDataModule):
    """Random images made once on the training device: measures the model, not the input pipeline.

    The loaders yield only labels; `on_after_batch_transfer` pairs them with a batch of images that
    already sits on the device, so no host-to-device copy of pixels enters the step time.
    """

    def setup(self, stage: str | None = None) -> None:
        c = self.config
        length = c.train_samples or max(c.global_batch_size * 4, 1024)
        self.train_set = SyntheticLabels(length, c.num_classes, c.seed)
        self.val_set = SyntheticLabels(c.val_samples or 512, c.num_classes, c.seed + 1)
        self._images: torch.Tensor | None = None

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        labels = batch
        if self._images is None or self._images.shape[0] < len(labels) or self._images.device != labels.device:
            g = torch.Generator(device=labels.device).manual_seed(self.config.seed)
            shape = (
                max(len(labels), self.config.per_device_batch_size),
                self.config.in_channels,
                self.config.image_size,
                self.config.image_size,
            )
            self._images = torch.randn(shape, generator=g, device=labels.device)
        return self._images[: len(labels)], labels


class ImageFolderDataModule(_ShardedDataModule):
    """ImageNet-style folders on the learner's disk: DATA_DIR/train/<class>/*.jpeg and DATA_DIR/val/..."""

    def setup(self, stage: str | None = None) -> None:
        from torchvision import datasets, transforms

        c = self.config
        from fasttrain.rank.data_checks import check_image_folder, image_folder_root

        root = image_folder_root(c)
        check_image_folder(root, c)
        normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        train_tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(c.image_size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                normalize,
            ]
        )
        val_tf = transforms.Compose(
            [
                transforms.Resize(int(c.image_size * 1.14)),
                transforms.CenterCrop(c.image_size),
                transforms.ToTensor(),
                normalize,
            ]
        )
        self.train_set = _Batched(_image_folder(datasets, root / "train", train_tf))
        self.val_set = _Batched(_image_folder(datasets, root / "val", val_tf))

    def _loader(self, dataset, batch_sampler):
        workers = self.config.loader_workers
        return DataLoader(
            dataset,
            sampler=batch_sampler,
            batch_size=None,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )


def _image_folder(datasets, folder: Path, transform):
    try:
        return datasets.ImageFolder(str(folder), transform)
    except FileNotFoundError as exc:  # no class folders, or no image files in them
        raise DataNotFoundError(
            f"{folder} holds no images in ImageFolder's layout ({exc}). It needs one "
            f"sub-folder per class with the images inside: {folder}/<class>/<image>.jpeg"
        ) from None


class _Batched(Dataset):
    """Adapts a per-item dataset to `dataset[list_of_indices]`, naming the file that fails to load."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices):
        items = []
        for i in indices:
            try:
                items.append(self.dataset[i])
            except Exception as exc:
                path = self.dataset.samples[i][0]
                raise RuntimeError(f"Cannot read image {path} ({exc}); remove or replace the file.") from exc
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def build_datamodule(config: TrainConfig) -> LightningDataModule:
    return {
        "fashion_mnist": FashionMNISTDataModule,
        "synthetic": SyntheticDataModule,
        "imagefolder": ImageFolderDataModule,
    }[config.data](config)
