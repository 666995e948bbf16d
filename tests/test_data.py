"""CIFAR-10 sources (canonical + JPEG), checksum before unpickling, cache, and DeviceBatches."""

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from labnorm import data as D

PER_BATCH = 6  # images per generated canonical batch


def _canonical_archive(path: Path) -> dict:
    """A tiny archive in the canonical format: 5 train batches + 1 test batch of PER_BATCH images."""
    rng = np.random.default_rng(0)
    truth = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}

    def add(tf, name, obj):
        raw = pickle.dumps(obj)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(raw)
        tf.addfile(info, io.BytesIO(raw))

    with tarfile.open(path, "w:gz") as tf:
        add(tf, "batches.meta", {b"label_names": [c.encode() for c in D.CIFAR10_CLASSES]})
        for name, split in [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]:
            x = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
            y = list(rng.integers(0, 10, PER_BATCH))
            add(tf, name, {b"data": x, b"labels": y})
            truth[f"{split}_x"].append(x.reshape(-1, 3, 32, 32))
            truth[f"{split}_y"].append(np.array(y))
    return {k: np.concatenate(v) for k, v in truth.items()}


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """Each test: its own cache folder, no in-process memo, no $LABNORM_DATA."""
    monkeypatch.setenv("LABNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LABNORM_DATA", raising=False)
    D._MEMO.clear()
    yield
    D._MEMO.clear()


@pytest.fixture
def canonical(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    path = root / D.CANONICAL_FILE
    truth = _canonical_archive(path)
    # The generated archive stands in for the real one: expect its checksum.
    monkeypatch.setattr(D, "CANONICAL_MD5", _md5(path))
    return root, path, truth


def test_canonical_archive_loads_in_order(canonical):
    root, _, truth = canonical
    for split in ("train", "test"):
        ds = D.load_cifar10(split, root=root, download=False)
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert ds.images.shape == (len(truth[f"{split}_y"]), 3, 32, 32)
        # Row layout: first 1024 bytes are the red plane, row-major.
        assert np.array_equal(ds.images.numpy(), truth[f"{split}_x"])
        assert np.array_equal(ds.labels.numpy(), truth[f"{split}_y"])
        assert ds.variant == "CIFAR-10" and ds.classes == D.CIFAR10_CLASSES
    assert len(D.load_cifar10("train", root=root)) == 5 * PER_BATCH


def test_second_load_comes_from_the_cache(canonical, monkeypatch):
    root, _, truth = canonical
    D.load_cifar10("train", root=root)
    cached = list(Path(os.environ["LABNORM_CACHE"]).glob("cifar10-canonical-*.npz"))
    assert len(cached) == 1
    D._MEMO.clear()

    def boom(path):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(D, "_decode_canonical", boom)
    ds = D.load_cifar10("test", root=root)
    assert np.array_equal(ds.images.numpy(), truth["test_x"])


def test_wrong_checksum_is_refused_before_unpickling(canonical, monkeypatch):
    root, path, _ = canonical
    monkeypatch.setattr(D, "CANONICAL_MD5", "c58f30108f718f92721af3b95e74349a")

    def no_unpickling(*a, **k):
        raise AssertionError("unpickled an archive whose checksum failed")

    monkeypatch.setattr(D.pickle, "load", no_unpickling)
    with pytest.raises(D.CorruptArchiveError) as err:
        D.load_cifar10("train", root=root)
    message = str(err.value)
    assert D.CANONICAL_FILE in message and "c58f30108f718f92721af3b95e74349a" in message


def test_truncated_archive_gives_a_clear_error(canonical):
    root, path, _ = canonical
    good_md5 = D.CANONICAL_MD5
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(D.CorruptArchiveError, match=f"{D.CANONICAL_FILE}.*expected {good_md5}.*truncated or corrupt"):
        D.load_cifar10("train", root=root)


def test_corrupt_archive_with_matching_checksum_is_still_a_clear_error(canonical, monkeypatch):
    root, path, _ = canonical
    path.write_bytes(b"\x1f\x8b" + os.urandom(500))
    monkeypatch.setattr(D, "CANONICAL_MD5", _md5(path))
    with pytest.raises(D.CorruptArchiveError, match="cannot read"):
        D.load_cifar10("train", root=root)


def test_download_when_missing_and_allowed(tmp_path, monkeypatch):
    source = tmp_path / "upstream.tar.gz"
    truth = _canonical_archive(source)
    monkeypatch.setattr(D, "CANONICAL_MD5", _md5(source))
    calls = []

    def fake_urlretrieve(url, dest):
        calls.append(url)
        Path(dest).write_bytes(source.read_bytes())

    monkeypatch.setattr(D.urllib.request, "urlretrieve", fake_urlretrieve)
    root = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match="download=True"):
        D.load_cifar10("train", root=root, download=False)
    assert calls == []
    ds = D.load_cifar10("train", root=root, download=True)
    assert calls == [D.CANONICAL_URL]
    assert np.array_equal(ds.labels.numpy(), truth["train_y"])
    assert not list(root.glob("*.part"))


def test_download_of_a_bad_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(D.urllib.request, "urlretrieve", lambda url, dest: Path(dest).write_bytes(b"not a tar"))
    with pytest.raises(D.CorruptArchiveError, match="expected c58f30108f718f92721af3b95e74349a"):
        D.load_cifar10("train", root=tmp_path / "dl", download=True)


def test_import_touches_no_network():
    code = (
        "import socket\n"
        "def boom(*a, **k): raise RuntimeError('network at import')\n"
        "class Guarded(socket.socket):\n"
        "    connect = connect_ex = sendto = boom\n"
        "socket.socket = Guarded; socket.create_connection = boom; socket.getaddrinfo = boom\n"
        "import labnorm, labnorm.data, labnorm.experiments, labnorm.results\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- JPEG source


def _jpeg_archive(path: Path, per_class: int = 2) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    with tarfile.open(path, "w:gz") as tf:
        for split in ("test", "train"):
            for cls in reversed(D.CIFAR10_CLASSES):  # out of order on purpose
                for i in range(per_class):
                    buf = io.BytesIO()
                    # Flat colour per image: survives JPEG nearly unchanged.
                    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                    Image.new("RGB", (32, 32), colour).save(buf, "JPEG", quality=95)
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tf.addfile(info, buf)


def test_jpeg_archive_through_env(tmp_path, monkeypatch):
    root = tmp_path / "jpeg"
    root.mkdir()
    _jpeg_archive(root / D.JPEG_FILE)
    monkeypatch.setenv("LABNORM_DATA", str(root))
    ds = D.load_cifar10("train")
    assert ds.variant == "CIFAR-10 (JPEG q75 copy)"
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == torch.uint8
    # Two of each class, in the fixed class-mixed order of the names' hashes, whatever the tar's order.
    assert ds.labels.bincount().tolist() == [2] * 10
    names = sorted(((cls, f"{i:04d}.jpg") for cls in D.CIFAR10_CLASSES for i in range(2)),
                   key=lambda t: D._jpeg_order_key("train", *t))
    assert ds.labels.tolist() == [D.CIFAR10_CLASSES.index(cls) for cls, _ in names]
    assert ds.labels.tolist() != sorted(ds.labels.tolist())
    assert len(D.load_cifar10("test")) == 20


def test_jpeg_order_is_fixed_and_mixes_classes():
    key = D._jpeg_order_key
    assert key("train", "cat", "0001.jpg") == key("train", "cat", "0001.jpg")
    # 1,000 names of two classes: the first 100 in hash order hold both classes in about equal numbers.
    names = sorted([(c, f"{i:04d}.jpg") for c in ("airplane", "truck") for i in range(500)], key=lambda t: key("train", *t))
    first = [c for c, _ in names[:100]]
    assert 30 < first.count("airplane") < 70


def test_jpeg_archive_with_a_bad_member(tmp_path):
    path = tmp_path / D.JPEG_FILE
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("train/unicorn/0000.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(D.CorruptArchiveError, match="unexpected member"):
        D.load_cifar10("train", root=path)


SHARED = Path(os.environ.get("LABNORM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.skipif(not (SHARED / D.JPEG_FILE).is_file(), reason="the offline JPEG copy is not here")
def test_the_real_jpeg_copy(monkeypatch):
    monkeypatch.setenv("LABNORM_DATA", str(SHARED))
    # The real copy decodes slowly once: share the developer's cache when one is set.
    train, test = D.load_cifar10("train"), D.load_cifar10("test")
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert train.labels.bincount().tolist() == [5000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    # Class-mixed from the start, like the canonical pickles: every class among the first 100 images.
    assert train.labels[:100].unique().numel() == 10 and test.labels[:100].unique().numel() == 10
    mean = (train.images.float() / 255).mean((0, 2, 3))
    assert torch.allclose(mean, torch.tensor(D.CIFAR10_MEAN), atol=2e-3)


# ---------------------------------------------------------------------- batches


def _toy(n=40):
    g = torch.Generator().manual_seed(0)
    return D.CIFAR10Split(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.arange(n) % 10, "train", "toy",
    )


def test_batches_are_reproducible_by_seed_and_epoch():
    ds = _toy()
    a = [y.tolist() for _, y in D.DeviceBatches(ds, 8, train=True, seed=3)]
    b = [y.tolist() for _, y in D.DeviceBatches(ds, 8, train=True, seed=3)]
    c = [y.tolist() for _, y in D.DeviceBatches(ds, 8, train=True, seed=4)]
    assert a == b and a != c
    it = D.DeviceBatches(ds, 8, train=True, seed=3)
    first, second = [[x for x, _ in it] for _ in range(2)]
    assert not torch.equal(first[0], second[0])
    # Resuming at epoch 1 gives the second epoch again.
    it.set_epoch(1)
    assert all(torch.equal(u, v) for u, v in zip([x for x, _ in it], second))


def test_eval_batches_keep_order_and_the_last_short_batch():
    ds = _toy(21)
    it = D.DeviceBatches(ds, 8, train=False)
    assert len(it) == 3
    ys = torch.cat([y for _, y in it])
    assert torch.equal(ys, ds.labels)
    x, _ = next(iter(it))
    # Normalized with the CIFAR-10 statistics, no augmentation
    expected = (ds.images[:8].float() / 255 - torch.tensor(D.CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        D.CIFAR10_STD
    ).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)


def test_training_batches_drop_the_last_short_batch():
    it = D.DeviceBatches(_toy(21), 8, train=True)
    assert len(it) == 2 and sum(len(y) for _, y in it) == 16
    with pytest.raises(ValueError, match="no full batch"):
        D.DeviceBatches(_toy(5), 8, train=True)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = D.random_crop(x, 2, g)
    g = torch.Generator().manual_seed(0)
    oy = torch.randint(0, 5, (16,), generator=g)
    ox = torch.randint(0, 5, (16,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, oy[i] : oy[i] + 8, ox[i] : ox[i] + 8])
    # Some crops reach into the zero padding
    assert (out == 0).any()


def test_random_flip_mirrors_about_half():
    x = torch.arange(2 * 1 * 1 * 4, dtype=torch.float32).view(2, 1, 1, 4).repeat(500, 1, 1, 1)
    out = D.random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out != x).any(dim=(1, 2, 3))
    assert torch.equal(out[flipped], x[flipped].flip(3))
    assert 400 < flipped.sum() < 600


def test_scaled_subset_is_class_balanced():
    ds = D.CIFAR10Split(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), torch.arange(100) % 10, "train", "toy")
    sub = D.scaled_subset(ds, 30, seed=0)
    assert len(sub) == 30 and sub.labels.bincount().tolist() == [3] * 10
    assert D.scaled_subset(ds, 1000) is ds
