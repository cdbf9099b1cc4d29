"""The data checked before training: ImageFolder's class folders against each other and the config, and
every data file read whole, each problem with its path. A rank's setup() runs the ImageFolder checks;
`check_data(config)` runs them all before any rank starts (for the launcher)."""

from __future__ import annotations

import os
from pathlib import Path

from fasttrain.config import TrainConfig
from fasttrain.rank.data import FASHION_MNIST_FILES, DataError, DataNotFoundError, _fashion_mnist_folder, read_idx


def image_folder_root(config: TrainConfig) -> Path:
    return Path(config.data_dir or os.environ.get("IMAGENET_DIR", "data/imagenet"))


def check_image_folder(root: Path, config: TrainConfig) -> list[str]:
    """The class folders of train/ and val/ against each other and the config; returns the classes.
    ImageFolder numbers the classes by their sorted folder names, split by split: different folders in
    the two splits give different labels to the same name, and nothing says so but a 0% accuracy."""
    train, val = (_class_folders(root / split) for split in ("train", "val"))
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise DataError(
            f"{root / 'train'} and {root / 'val'} hold different classes (only in train: "
            f"{', '.join(only_train) or '-'}; only in val: {', '.join(only_val) or '-'}). Labels come from the "
            "sorted folder names of each split, so both need the same class folders: rename or remove the odd ones."
        )
    if len(train) < 2:
        raise DataError(
            f"{root / 'train'} holds one class ({train[0]}): every label would be 0 and any model scores 100%. "
            "Classification needs two or more class folders."
        )
    if len(train) != config.num_classes:
        raise DataError(
            f"{root / 'train'} holds {len(train)} classes but num_classes={config.num_classes}; "
            f"set num_classes={len(train)}."
        )
    if config.in_channels != 3:
        raise DataError(
            f"in_channels={config.in_channels}, but ImageFolder reads every image of {root / 'train'} as RGB "
            "(3 channels; grey images too, as three equal channels): set in_channels=3."
        )
    return train


def _class_folders(folder: Path) -> list[str]:
    """Sorted sub-folder names, as torchvision's find_classes lists them (without scanning the images)."""
    if not folder.is_dir():
        raise DataNotFoundError(
            f"ImageFolder data needs {folder}/<class>/<image> folders; {folder} does not exist. Set "
            "data_dir (or IMAGENET_DIR) to a folder holding train/ and val/, e.g. Imagenette "
            "(github.com/fastai/imagenette) unpacked on your disk."
        )
    try:
        with os.scandir(folder) as entries:
            classes = sorted(entry.name for entry in entries if entry.is_dir())
    except PermissionError as exc:
        raise DataError(
            f"Cannot read {folder} ({exc.strerror}): give this user read permission (chmod -R a+rX)."
        ) from None
    if not classes:
        raise DataNotFoundError(
            f"{folder} holds no class folders. It needs one sub-folder per class with the images inside: "
            f"{folder}/<class>/<image>.jpeg"
        )
    return classes


def check_data(config: TrainConfig) -> None:
    """What a rank's setup() would find wrong with the data, found before any rank starts: missing,
    unreadable or damaged files and ImageFolder mismatches, each with its path (the launcher may call it)."""
    if config.data == "fashion_mnist":
        folder = _fashion_mnist_folder(config.data_dir, config.download)
        for name in (name for pair in FASHION_MNIST_FILES.values() for name in pair):
            read_idx(folder / name)  # decompresses the whole file where no decoded copy is cached
    elif config.data == "imagefolder":
        check_image_folder(image_folder_root(config), config)
