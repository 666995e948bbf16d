r"""CIFAR-10, the real thing, and a batch iterator that lives on the device.

Two sources give the same tensors — uint8 images $[N, 3, 32, 32]$ and int64
labels, classes in the canonical order:

* **Canonical**: `cifar-10-python.tar.gz` from the dataset's home page. Its MD5 is
  checked *before* anything in it is unpickled (a pickle can run code); a truncated
  or corrupt archive raises `CorruptArchiveError` naming the file and the expected
  checksum. It is downloaded only when missing and `download=True`, never at import.
* **Offline JPEG copy**: `cifar10-jpeg.tar.gz` holding `train/<class>/*.jpg` and
  `test/<class>/*.jpg`, the layout of machines without internet. Images are
  JPEG-compressed (q75), so results on it are labelled "CIFAR-10 (JPEG q75 copy)".
  The archive is grouped by class, the canonical pickles are not: the copy's images
  are put in a fixed, class-mixed order (by the SHA-256 of each image's
  `split/class/file` name), so that the first images of a split — an init batch, a
  fixed evaluation set, un-shuffled batches — mix the classes on both sources.

Where to look: the `root` argument, else `$LABNORM_DATA`, else the cache folder
(`$LABNORM_CACHE`, default `~/.cache/labnorm`) where the canonical archive is
downloaded. Decoded arrays are cached there as `.npz`, keyed by the archive's
hash, so the second load takes a fraction of a second.

`DeviceBatches` keeps a whole split as one uint8 tensor on the target device and
does the standard augmentation there — random crop after zero-padding by 4 and a
horizontal flip — shuffled by a seeded generator. No DataLoader, no worker processes.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10Split",
    "CorruptArchiveError",
    "load_cifar10",
    "DeviceBatches",
    "random_crop",
    "random_flip",
    "scaled_subset",
]

# The canonical class order: label $k$ is `CIFAR10_CLASSES[k]`.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
# Per-channel mean and standard deviation of the canonical training set, in [0, 1] units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CANONICAL_FILE = "cifar-10-python.tar.gz"
CANONICAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CANONICAL_MD5 = "c58f30108f718f92721af3b95e74349a"
JPEG_FILE = "cifar10-jpeg.tar.gz"

VARIANT_CANONICAL = "CIFAR-10"
VARIANT_JPEG = "CIFAR-10 (JPEG q75 copy)"

SPLITS = ("train", "test")


class CorruptArchiveError(ValueError):
    """An archive that fails its checksum or cannot be read."""


@dataclass(frozen=True)
class CIFAR10Split:
    """One split: `images` uint8 $[N, 3, 32, 32]$, `labels` int64 $[N]$."""

    images: torch.Tensor
    labels: torch.Tensor
    split: str
    variant: str
    classes: tuple[str, ...] = CIFAR10_CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"CIFAR10Split({self.split!r}, {len(self)} images, variant={self.variant!r})"


# --------------------------------------------------------------------------- sources


def _cache_dir() -> Path:
    return Path(os.environ.get("LABNORM_CACHE", Path.home() / ".cache" / "labnorm"))


def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path) -> None:
    """Fetch `url` to `dest` (through a `.part` file, so an interrupted download leaves no archive)."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"labnorm: downloading {url} to {dest} ...")
    urllib.request.urlretrieve(url, part)
    part.replace(dest)


def verify_canonical(path: Path) -> str:
    """Check the canonical archive's MD5; return it. Raises `CorruptArchiveError`."""
    digest = _file_digest(path, "md5")
    if digest != CANONICAL_MD5:
        raise CorruptArchiveError(
            f"{path.name}: MD5 is {digest}, expected {CANONICAL_MD5}. The archive is truncated "
            "or corrupt; delete it and download it again. Nothing in it was unpickled."
        )
    return digest


def _find_archive(root: str | os.PathLike | None, download: bool) -> tuple[Path, str]:
    """Locate an archive; return (path, variant). Downloads the canonical one if allowed."""
    env = os.environ.get("LABNORM_DATA")
    base = Path(root) if root is not None else Path(env) if env else _cache_dir()
    # An archive given directly
    if base.is_file():
        if base.name.endswith(JPEG_FILE) or "jpeg" in base.name.lower():
            return base, VARIANT_JPEG
        return base, VARIANT_CANONICAL
    # The canonical archive wins when both are present: it is the real thing.
    if (base / CANONICAL_FILE).is_file():
        return base / CANONICAL_FILE, VARIANT_CANONICAL
    if (base / JPEG_FILE).is_file():
        return base / JPEG_FILE, VARIANT_JPEG
    if download:
        _download(CANONICAL_URL, base / CANONICAL_FILE)
        return base / CANONICAL_FILE, VARIANT_CANONICAL
    raise FileNotFoundError(
        f"labnorm: no CIFAR-10 archive in {base} (looked for {CANONICAL_FILE} and {JPEG_FILE}); "
        "pass download=True to fetch the canonical one, or point $LABNORM_DATA at a folder holding one"
    )


# --------------------------------------------------------------------------- decoders


def _decode_canonical(path: Path) -> dict[str, np.ndarray]:
    """Read the pickled batches of the canonical archive (its MD5 already checked)."""
    batches = {f"cifar-10-batches-py/data_batch_{i}": "train" for i in range(1, 6)}
    batches["cifar-10-batches-py/test_batch"] = "test"
    parts: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as tf:
            meta = pickle.load(tf.extractfile("cifar-10-batches-py/batches.meta"), encoding="bytes")
            names = tuple(n.decode() for n in meta[b"label_names"])
            if names != CIFAR10_CLASSES:
                raise CorruptArchiveError(f"{path.name}: unexpected class names {names}")
            # Sorted batch names: data_batch_1 … 5 give the canonical training order.
            for name in sorted(batches):
                d = pickle.load(tf.extractfile(name), encoding="bytes")
                parts[batches[name]].append((d[b"data"], d[b"labels"]))
    except (tarfile.TarError, EOFError, KeyError, OSError, pickle.UnpicklingError) as e:
        raise CorruptArchiveError(f"{path.name}: cannot read the CIFAR-10 batches ({e})") from e
    out = {}
    for split, chunks in parts.items():
        # Each row is 3072 bytes: 1024 red, 1024 green, 1024 blue, row-major: $[N, 3, 32, 32]$
        out[f"{split}_x"] = np.concatenate([x for x, _ in chunks]).reshape(-1, 3, 32, 32)
        out[f"{split}_y"] = np.concatenate([np.asarray(y) for _, y in chunks]).astype(np.int64)
    return out


def _jpeg_order_key(split: str, cls: str, name: str) -> bytes:
    """Sort key of one image of the JPEG copy: the hash of its `split/class/file` name.

    A fixed order that mixes the classes, depends on no random generator and not on the
    order or the leading folder of the tar's members.
    """
    return hashlib.sha256(f"{split}/{cls}/{name}".encode()).digest()


def _decode_jpeg(path: Path) -> dict[str, np.ndarray]:
    """Decode `train/<class>/*.jpg` and `test/<class>/*.jpg`, in the class-mixed order of `_jpeg_order_key`."""
    from PIL import Image

    found: dict[str, list[tuple[bytes, int, np.ndarray]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if not (member.isfile() and member.name.lower().endswith(".jpg")):
                    continue
                # Path parts: [..., split, class, file]; tolerate a leading folder.
                parts = Path(member.name).parts
                if len(parts) < 3:
                    raise CorruptArchiveError(
                        f"{path.name}: unexpected member {member.name!r}: every image must be "
                        "<split>/<class>/<file>.jpg (split train or test, class one of CIFAR10_CLASSES); "
                        "this is not the CIFAR-10 JPEG copy's layout — rebuild the archive"
                    )
                split, cls = parts[-3:-1]
                if split not in found or cls not in CIFAR10_CLASSES:
                    raise CorruptArchiveError(f"{path.name}: unexpected member {member.name}")
                with Image.open(io.BytesIO(tf.extractfile(member).read())) as im:
                    pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
                if pixels.shape != (32, 32, 3):
                    raise CorruptArchiveError(f"{path.name}: {member.name} is {pixels.shape}, not 32x32 RGB")
                key = _jpeg_order_key(split, cls, Path(member.name).name)
                found[split].append((key, CIFAR10_CLASSES.index(cls), pixels))
            # `tarfile` ends quietly at an unreadable member header: whatever follows the last member
            # it read must be the archive's zero padding, or members were lost
            tf.fileobj.seek(tf.offset)
            if tf.fileobj.read().strip(b"\0"):
                raise CorruptArchiveError(
                    f"{path.name}: unreadable member header at byte {tf.offset} of the archive; the members "
                    "after it would be missing. The archive is corrupt: rebuild or download it again"
                )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CorruptArchiveError(f"{path.name}: cannot read the JPEG archive ({e})") from e
    out = {}
    for split, items in found.items():
        if not items:
            raise CorruptArchiveError(f"{path.name}: no {split}/<class>/*.jpg images")
        items.sort(key=lambda t: t[0])
        # $[N, 32, 32, 3] \to [N, 3, 32, 32]$
        out[f"{split}_x"] = np.ascontiguousarray(np.stack([p for _, _, p in items]).transpose(0, 3, 1, 2))
        out[f"{split}_y"] = np.array([y for _, y, _ in items], dtype=np.int64)
    return out


# --------------------------------------------------------------------------- loading + cache

_MEMO: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def _check_complete(name: str, arrays: dict[str, np.ndarray]) -> None:
    """A split of the JPEG copy is complete when every class has the same number of images.

    CIFAR-10 is balanced (5,000 training and 1,000 test images per class), and the copy is written
    class by class, so an archive that lost members — a corrupt header, a truncated file, a damaged
    cache — loses whole classes or part of one: unequal counts. (A subset made for tests keeps the
    balance.) The canonical archive needs no such rule: its MD5 checks every byte.
    """
    for split in SPLITS:
        counts = np.bincount(arrays[f"{split}_y"], minlength=len(CIFAR10_CLASSES))
        if len(counts) != len(CIFAR10_CLASSES) or counts.min() != counts.max() or counts.min() == 0:
            detail = ", ".join(f"{c} {k}" for c, k in zip(CIFAR10_CLASSES, counts))
            raise CorruptArchiveError(
                f"{name}: the {split} split is incomplete — images per class: {detail}; every class must have "
                "the same count (5,000 train / 1,000 test in CIFAR-10). Rebuild or download the archive again"
            )


def _load_arrays(path: Path, variant: str) -> dict[str, np.ndarray]:
    # The checksum comes first, always: the canonical archive is unpickled only after it.
    if variant == VARIANT_CANONICAL:
        digest = verify_canonical(path)
    else:
        digest = _file_digest(path, "sha256")
    key = (variant, digest)
    if key in _MEMO:
        return _MEMO[key]
    # "jpeg-mixed": caches of the copy in its old class-grouped order are not reused.
    tag = "canonical" if variant == VARIANT_CANONICAL else "jpeg-mixed"
    cache = _cache_dir() / f"cifar10-{tag}-{digest[:16]}.npz"
    arrays = None
    if cache.is_file():
        try:
            # allow_pickle=False: the cache holds plain arrays only.
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            arrays = None  # a damaged cache is rebuilt below
        if arrays is not None and variant != VARIANT_CANONICAL:
            # (a cache written from an archive that lost members is refused like the archive)
            _check_complete(cache.name, arrays)
    if arrays is None:
        arrays = _decode_canonical(path) if variant == VARIANT_CANONICAL else _decode_jpeg(path)
        if variant != VARIANT_CANONICAL:
            _check_complete(path.name, arrays)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only cache folder only costs speed
    _MEMO[key] = arrays
    return arrays


def load_cifar10(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> CIFAR10Split:
    """Load one split of CIFAR-10 as uint8 $[N, 3, 32, 32]$ images and int64 labels.

    Args:
        split: `"train"` (50,000 images) or `"test"` (10,000).
        root: a folder holding `cifar-10-python.tar.gz` or `cifar10-jpeg.tar.gz`, or one
            of those files; default `$LABNORM_DATA`, else the cache folder.
        download: fetch the canonical archive when none is found.

    The result's `variant` says which source it came from. Each call returns its own tensors:
    changing them in place does not change what a later load returns. A JPEG copy whose split is
    incomplete (classes of unequal size: members lost to a corrupt header or a truncated file) is
    refused with `CorruptArchiveError`.
    """
    if split not in SPLITS:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    path, variant = _find_archive(root, download)
    arrays = _load_arrays(path, variant)
    return CIFAR10Split(
        # Copies: the decoded arrays stay in memory for the next load and must not be shared
        images=torch.from_numpy(arrays[f"{split}_x"].copy()),
        labels=torch.from_numpy(arrays[f"{split}_y"].copy()),
        split=split,
        variant=variant,
    )


def scaled_subset(data: CIFAR10Split, n: int, seed: int = 0) -> CIFAR10Split:
    """A class-balanced random subset of `n` images (all of them when `n >= len(data)`)."""
    if n >= len(data):
        return data
    g = torch.Generator().manual_seed(seed)
    per_class = n // len(data.classes)
    picks = []
    for k in range(len(data.classes)):
        idx = (data.labels == k).nonzero().squeeze(1)
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    # Any remainder is filled from a random permutation of the rest.
    chosen = torch.cat(picks)
    if len(chosen) < n:
        rest = torch.ones(len(data), dtype=torch.bool)
        rest[chosen] = False
        pool = rest.nonzero().squeeze(1)
        chosen = torch.cat([chosen, pool[torch.randperm(len(pool), generator=g)[: n - len(chosen)]]])
    chosen = chosen.sort().values
    return CIFAR10Split(data.images[chosen], data.labels[chosen], data.split, data.variant, data.classes)


# --------------------------------------------------------------------------- augmentation


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad $[N, C, H, W]$ by `pad` on each side and take one random $H \\times W$ crop per image."""
    n, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    # Offsets drawn on the CPU generator, so every device sees the same crops.
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    # Gather $xp[n, c, oy_n + i, ox_n + j]$ for all n, c, i, j at once
    return xp[torch.arange(n, device=x.device)[:, None, None, None],
              torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class DeviceBatches:
    """Batches of one split, kept whole on `device`; one pass of `iter()` is one epoch.

    Args:
        data: a `CIFAR10Split` (or anything with uint8 `images` and int64 `labels`).
        batch_size: images per batch.
        train: shuffle, augment and drop the last short batch (all three can be overridden).
        device: where the split lives and batches are made.
        seed: seeds the shuffling and augmentation; epoch $e$ uses its own stream derived
            from `(seed, e)`, so a run resumed at epoch $e$ sees the same batches.
        pad: zero padding before the random crop.
        channels_last: return batches in channels_last memory format.
        dtype: floating dtype of the returned images, normalized by the CIFAR-10 mean/std.
    """

    def __init__(
        self,
        data: CIFAR10Split,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str = "cpu",
        seed: int = 0,
        shuffle: bool | None = None,
        augment: bool | None = None,
        drop_last: bool | None = None,
        pad: int = 4,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"DeviceBatches: batch_size must be >= 1, got {batch_size}")
        if data.images.dtype != torch.uint8 or data.images.dim() != 4:
            raise TypeError("DeviceBatches: expected uint8 images [N, C, H, W]")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = train if shuffle is None else shuffle
        self.augment = train if augment is None else augment
        self.drop_last = train if drop_last is None else drop_last
        self.pad = pad
        self.seed = seed
        self.epoch = 0
        self.channels_last = channels_last
        self.dtype = dtype
        self.mean = torch.tensor(CIFAR10_MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(CIFAR10_STD, device=self.device).view(1, 3, 1, 1) * 255
        if self.drop_last and len(self.labels) < batch_size:
            raise ValueError(
                f"DeviceBatches: {len(self.labels)} images make no full batch of {batch_size} with drop_last"
            )

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter()` produce epoch `epoch` (for resuming)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # One generator per (seed, epoch): reproducible, and independent of earlier epochs.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = random_flip(random_crop(x, self.pad, g), g)
            # uint8 $\to$ float, then $(x - \mu) / \sigma$ per channel
            x = (x.to(self.dtype) - self.mean.to(self.dtype)) / self.std.to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]
