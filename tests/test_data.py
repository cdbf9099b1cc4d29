import gzip
import os

import pytest
import torch
from conftest import cpu_config
from fasttrain.rank import data, data_checks


def test_fashion_mnist_loads_offline_from_debians_package():
    images, labels = data.load_fashion_mnist("train", download=False)
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,) and set(labels.unique().tolist()) == set(range(10))
    val_images, _ = data.load_fashion_mnist("val", download=False)
    assert val_images.shape == (10000, 28, 28)


def test_missing_data_names_both_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_fashion_mnist("train", data_dir=str(tmp_path / "also-nowhere"), download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message and "download=True" in message


def test_corrupt_idx_file_is_named(tmp_path):
    bad = tmp_path / "bad-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(bad)


def test_batches_are_normalised_and_resized():
    config = cpu_config(image_size=32, in_channels=3)
    module = data.FashionMNISTDataModule(config)
    module.setup()
    x, y = module.train_set[[0, 1, 2]]
    assert x.shape == (3, 3, 32, 32) and y.shape == (3,)
    assert len(module.train_set) == config.train_samples
    assert abs(float(module.train_set[list(range(512))][0].mean())) < 0.3


def test_each_rank_reads_its_own_shard_of_one_permutation():
    """Step k of 2 ranks sees exactly the images of step k of 1 rank: the basis of DDP == 1 process."""
    config = cpu_config(global_batch_size=16)

    def first_batch_indices(rank, world):
        module = data.FashionMNISTDataModule(config.replace(devices=world))
        module.setup()
        module.trainer = type("T", (), {"global_rank": rank, "world_size": world})()
        return next(iter(module.train_dataloader().sampler))

    one = first_batch_indices(0, 1)
    two = first_batch_indices(0, 2) + first_batch_indices(1, 2)
    assert len(one) == 16 and sorted(one) == sorted(two)


def test_imagefolder_path_that_does_not_exist(tmp_path):
    module = data.ImageFolderDataModule(cpu_config(data="imagefolder", data_dir=str(tmp_path / "imagenet")))
    with pytest.raises(data.DataNotFoundError, match="does not exist"):
        module.setup()


def _image_folder(root, corrupt=False, classes=("cat", "dog"), val_classes=None):
    from PIL import Image

    for split in ("train", "val"):
        for label in classes if split == "train" or val_classes is None else val_classes:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 20), (40 * i, 80, 120)).save(folder / f"{i}.png")
    if corrupt:
        (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)


def test_imagefolder_reads_images_and_names_a_corrupt_one(tmp_path):
    _image_folder(tmp_path / "ok")
    module = data.ImageFolderDataModule(
        cpu_config(data="imagefolder", data_dir=str(tmp_path / "ok"), image_size=16, in_channels=3, num_classes=2)
    )
    module.setup()
    x, y = module.train_set[[0, 1, 2, 3]]
    assert x.shape == (4, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 1, 1]

    _image_folder(tmp_path / "bad", corrupt=True)
    module = data.ImageFolderDataModule(
        cpu_config(data="imagefolder", data_dir=str(tmp_path / "bad"), image_size=16, in_channels=3, num_classes=2)
    )
    module.setup()
    broken = [i for i, (path, _) in enumerate(module.train_set.dataset.samples) if path.endswith("broken.png")]
    with pytest.raises(RuntimeError, match=r"Cannot read image .*broken\.png .*remove or replace the file"):
        module.train_set[[0] + broken]


def test_imagefolder_without_class_folders(tmp_path):
    (tmp_path / "flat" / "train").mkdir(parents=True)
    (tmp_path / "flat" / "val").mkdir()
    (tmp_path / "flat" / "train" / "a.png").write_bytes(b"")
    module = data.ImageFolderDataModule(cpu_config(data="imagefolder", data_dir=str(tmp_path / "flat")))
    with pytest.raises(data.DataNotFoundError, match="one sub-folder per class"):
        module.setup()


def test_synthetic_images_are_made_on_the_device():
    config = cpu_config(data="synthetic", image_size=16, in_channels=3, num_classes=1000)
    module = data.SyntheticDataModule(config)
    module.setup()
    labels = torch.tensor([1, 2, 3])
    x, y = module.on_after_batch_transfer(labels, 0)
    assert x.shape == (3, 3, 16, 16) and torch.equal(y, labels)


def test_each_epoch_has_its_own_shuffle():
    config = cpu_config(global_batch_size=16)
    module = data.FashionMNISTDataModule(config)
    module.setup()
    module.trainer = type("T", (), {"global_rank": 0, "world_size": 1, "global_step": 0})()
    batches = module.train_dataloader().sampler
    batches.set_epoch(0)
    first = next(iter(batches))
    batches.set_epoch(1)
    assert next(iter(batches)) != first
    batches.set_epoch(0)
    assert next(iter(batches)) == first


# ---------------------------------------------------------------------- issue 17: data checked before training
def _fashion_mnist_copy(folder, damage=None):
    """The four Fashion-MNIST files copied from Debian's package, one of them damaged by `damage(bytes)`."""
    import shutil

    folder.mkdir()
    for pair in data.FASHION_MNIST_FILES.values():
        for name in pair:
            shutil.copy(f"{data.FASHION_MNIST_DEBIAN}/{name}", folder / name)
    if damage:
        target = folder / "t10k-labels-idx1-ubyte.gz"
        target.write_bytes(damage(target.read_bytes()))
    return folder


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda b: b[: len(b) // 2], "EOFError"),  # a download or copy cut short
        (lambda b: b"not gzip at all", "BadGzipFile"),
        (lambda b: b[:10] + bytes(len(b) - 10), ""),  # zeroed after the header
    ],
    ids=["truncated", "not-gzip", "zeroed"],
)
def test_damaged_fashion_mnist_file_is_named_with_what_to_do(tmp_path, damage, problem):
    folder = _fashion_mnist_copy(tmp_path / "fm", damage)
    with pytest.raises(data.DataError, match=problem) as info:
        data.load_fashion_mnist("val", data_dir=str(folder), download=False)
    message = str(info.value)
    assert f"{folder / 't10k-labels-idx1-ubyte.gz'} is damaged" in message
    assert "delete it" in message and "apt-get install --reinstall dataset-fashion-mnist" in message


def test_unreadable_fashion_mnist_file_is_named(tmp_path, monkeypatch):
    folder = _fashion_mnist_copy(tmp_path / "fm")
    target = folder / "t10k-images-idx3-ubyte.gz"

    def refuse(path, *args):  # what a file without read permission gives (chmod cannot stop root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data, "_read_file", refuse)
    with pytest.raises(data.DataError, match=f"Cannot read {target} \\(Permission denied\\).*chmod"):
        data.load_fashion_mnist("val", data_dir=str(folder), download=False)


def test_a_data_dir_that_does_not_exist_is_not_silently_replaced(tmp_path):
    with pytest.raises(data.DataNotFoundError, match=f"data_dir={tmp_path / 'typo'} does not exist"):
        data.load_fashion_mnist("train", data_dir=str(tmp_path / "typo"), download=False)


def test_check_data_before_any_rank_starts(tmp_path):
    data_checks.check_data(cpu_config())  # Debian's copy is whole
    folder = _fashion_mnist_copy(tmp_path / "fm", lambda b: b[:-100])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz is damaged"):
        data_checks.check_data(cpu_config(data_dir=str(folder)))
    data_checks.check_data(cpu_config(data="synthetic"))


def imagefolder_config(root, **overrides):
    values = dict(data="imagefolder", data_dir=str(root), image_size=16, in_channels=3, num_classes=2)
    return cpu_config(**{**values, **overrides})


def check_folder(root, **overrides):
    data_checks.check_data(imagefolder_config(root, **overrides))


def test_imagefolder_train_and_val_with_different_classes(tmp_path):
    _image_folder(tmp_path, classes=("cat", "dog"), val_classes=("cat", "dogs"))
    with pytest.raises(data.DataError) as info:
        check_folder(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'train'} and {tmp_path / 'val'} hold different classes" in message
    assert "only in train: dog" in message and "only in val: dogs" in message


def test_imagefolder_with_a_single_class(tmp_path):
    _image_folder(tmp_path, classes=("cat",))
    with pytest.raises(data.DataError, match=f"{tmp_path / 'train'} holds one class \\(cat\\).*two or more"):
        check_folder(tmp_path, num_classes=1)


def test_imagefolder_class_count_against_num_classes(tmp_path):
    _image_folder(tmp_path, classes=tuple(f"c{i:02d}" for i in range(12)))
    with pytest.raises(
        data.DataError, match=f"{tmp_path / 'train'} holds 12 classes but num_classes=10.*num_classes=12"
    ):
        check_folder(tmp_path, num_classes=10)
    check_folder(tmp_path, num_classes=12)


def test_imagefolder_channels_against_in_channels(tmp_path):
    _image_folder(tmp_path)
    with pytest.raises(data.DataError, match=f"in_channels=1.*{tmp_path / 'train'}.*RGB.*in_channels=3"):
        check_folder(tmp_path, in_channels=1)
    module = data.ImageFolderDataModule(imagefolder_config(tmp_path, in_channels=1))
    with pytest.raises(data.DataError, match="in_channels=1"):  # the rank's own setup checks it too
        module.setup()


def test_unreadable_imagefolder_split_is_named(tmp_path, monkeypatch):
    _image_folder(tmp_path)
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path) == str(tmp_path / "val"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(data_checks.os, "scandir", scandir)
    with pytest.raises(data.DataError, match=f"Cannot read {tmp_path / 'val'} \\(Permission denied\\)"):
        check_folder(tmp_path)
