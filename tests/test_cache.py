import gzip

import numpy as np
import pytest
from conftest import cpu_config
from fasttrain.rank import cache, data, models, record


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _idx_file(path, values: bytes):
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x01" + len(values).to_bytes(4, "big") + values)
    return path


def test_a_decoded_file_is_reused_for_the_same_bytes_only(tmp_path, monkeypatch):
    first = data.read_idx(_idx_file(tmp_path / "a-idx1-ubyte.gz", b"\x01\x02\x03"))
    assert first.tolist() == [1, 2, 3]
    assert len(list((cache.cache_dir() / "idx").glob("*.npy"))) == 1

    def no_decoding(*args):
        raise AssertionError("decompressed although a decoded copy of these bytes is cached")

    monkeypatch.setattr(data, "_gunzip", no_decoding)
    copy = (tmp_path / "copy").with_suffix(".gz")
    copy.write_bytes((tmp_path / "a-idx1-ubyte.gz").read_bytes())
    assert data.read_idx(copy).tolist() == [1, 2, 3]  # a copy of the file: the same entry
    monkeypatch.undo()
    changed = data.read_idx(_idx_file(tmp_path / "a-idx1-ubyte.gz", b"\x07\x08"))
    assert changed.tolist() == [7, 8]


def test_a_damaged_file_is_reported_and_not_cached(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte.gz"
    bad.write_bytes(_idx_file(tmp_path / "good.gz", b"\x01" * 100).read_bytes()[:30])
    for _ in range(2):
        with pytest.raises(data.DataError, match="is damaged"):
            data.read_idx(bad)
    assert not list((cache.cache_dir() / "idx").glob("*.npy"))


def test_an_unusable_entry_or_folder_is_worked_out_again(tmp_path, monkeypatch):
    key = cache.key_of("test", 1)
    entry = cache.cache_dir() / "n" / f"{key}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{half a file")
    assert cache.cached_number(key, lambda: 7, "n") == 7
    assert cache.cached_number(key, lambda: 8, "n") == 7  # the rewritten entry
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")  # cannot be created
    assert cache.cached_number(key, lambda: 9, "n") == 9
    assert cache.cached_array(b"x", lambda: np.arange(3), "idx").tolist() == [0, 1, 2]


def test_the_cached_flop_count_is_lightnings_count(monkeypatch):
    config = cpu_config()
    counted = models.flops_per_image(
        lambda: models.resnet50(config.num_classes, config.in_channels, config.width, config.small_input),
        config.image_size,
        config.in_channels,
    )
    assert record.train_flops_per_image(config) == counted

    def no_counting(*args, **kwargs):
        raise AssertionError("counted again although the count is cached")

    monkeypatch.setattr(models, "flops_per_image", no_counting)
    assert record.train_flops_per_image(config) == counted
    with pytest.raises(AssertionError):  # another image size is another count
        record.train_flops_per_image(config.replace(image_size=32))
