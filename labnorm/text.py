r"""Tiny Shakespeare, character by character: the text, its 65-character vocabulary and token tensors.

The corpus is char-rnn's `tinyshakespeare/input.txt` (40,000 lines of Shakespeare's plays, 1,115,394
characters, public domain), the usual small corpus of character-level language models (char-rnn,
nanoGPT's `shakespeare_char`). One source, found as CIFAR-10 is found (`labnorm.data`):

* the `root` argument (a folder holding `tinyshakespeare.txt`, or that file), else `$LABNORM_DATA`,
  else the cache folder (`$LABNORM_CACHE`, default `~/.cache/labnorm`);
* missing there and `download=True`: the canonical file, fetched from char-rnn's repository into that
  folder (through a `.part` file, so an interrupted download leaves nothing behind) — never at import.

Every file, found or downloaded, is checked against its **SHA-256** before a character of it is read;
a mismatch raises `labnorm.data.CorruptArchiveError` naming the file and both checksums. The checked
file is encoded once per process (a table lookup of a megabyte: milliseconds, so no cache file).

**Tokens.** The vocabulary is the sorted set of the text's characters: $V = 65$ (newline, space,
punctuation, `3`, the letters). Character $c$ has id `chars.index(c)`. The **split** is nanoGPT's: the
first 90% of the characters train, the last 10% validate ($n_{train} = \lfloor 0.9 n \rfloor$), so
validation is a contiguous stretch of plays the model never saw.

**The unigram entropy** $H_1 = -\sum_c p_c \ln p_c$ of the training characters (in nats per
character) is the loss of the best model that ignores context: a language model has learned the text
only when its validation loss is well below it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import CorruptArchiveError, _cache_dir, _download, _file_digest

__all__ = ["TINYSHAKESPEARE_FILE", "TINYSHAKESPEARE_URL", "TINYSHAKESPEARE_SHA256", "VARIANT_TINYSHAKESPEARE",
           "CharText", "load_tinyshakespeare", "verify_tinyshakespeare", "unigram_entropy", "random_windows",
           "eval_windows"]

TINYSHAKESPEARE_FILE = "tinyshakespeare.txt"
TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
VARIANT_TINYSHAKESPEARE = "tiny Shakespeare (char-rnn input.txt, characters)"


def unigram_entropy(tokens: torch.Tensor, vocab_size: int) -> float:
    r"""$H_1 = -\sum_c p_c \ln p_c$ in nats, $p_c$ the frequency of id $c$ in `tokens`."""
    counts = torch.bincount(tokens.flatten(), minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


@dataclass(frozen=True)
class CharText:
    """A character-level corpus: int64 token ids of its `train` and `val` splits, and its vocabulary."""

    train: torch.Tensor
    val: torch.Tensor
    chars: tuple[str, ...]
    variant: str = VARIANT_TINYSHAKESPEARE

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """The ids of `text`'s characters, int64 $[len]$. A character outside the vocabulary: `ValueError`."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"CharText.encode: characters {unknown!r} are not in the {self.vocab_size}-character "
                             "vocabulary")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The characters of token ids (any shape, read in order)."""
        flat = torch.as_tensor(ids).flatten().tolist()
        bad = [i for i in flat if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"CharText.decode: ids {bad[:5]} are outside 0..{self.vocab_size - 1}")
        return "".join(self.chars[i] for i in flat)

    def unigram_entropy(self) -> float:
        """The training split's unigram entropy in nats per character (see the module doc)."""
        return unigram_entropy(self.train, self.vocab_size)

    def __repr__(self) -> str:
        return (f"CharText({len(self.train):,} train / {len(self.val):,} val characters, vocabulary of "
                f"{self.vocab_size}, variant={self.variant!r})")


def verify_tinyshakespeare(path: Path) -> str:
    """Check the file's SHA-256; return it. Raises `CorruptArchiveError` naming the file and both checksums."""
    digest = _file_digest(path, "sha256")
    if digest != TINYSHAKESPEARE_SHA256:
        raise CorruptArchiveError(
            f"{path}: SHA-256 is {digest}, expected {TINYSHAKESPEARE_SHA256} (tiny Shakespeare as published in "
            f"char-rnn, {TINYSHAKESPEARE_URL}). The file is truncated, changed or another text; delete it and "
            "download it again")
    return digest


def _find_text(root: str | os.PathLike | None, download: bool) -> Path:
    """The text file: `root`, else `$LABNORM_DATA`, else the cache folder; downloaded there if allowed."""
    env = os.environ.get("LABNORM_DATA")
    base = Path(root) if root is not None else Path(env) if env else _cache_dir()
    if base.is_file():
        return base
    if (base / TINYSHAKESPEARE_FILE).is_file():
        return base / TINYSHAKESPEARE_FILE
    if download:
        _download(TINYSHAKESPEARE_URL, base / TINYSHAKESPEARE_FILE)
        return base / TINYSHAKESPEARE_FILE
    raise FileNotFoundError(
        f"labnorm: no {TINYSHAKESPEARE_FILE} in {base}; pass download=True to fetch the canonical one, or point "
        "$LABNORM_DATA at a folder holding it")


_MEMO: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}


def load_tinyshakespeare(root: str | os.PathLike | None = None, download: bool = True,
                         val_fraction: float = 0.1) -> CharText:
    """Tiny Shakespeare as character ids, split into the first `1 - val_fraction` and the rest.

    Args:
        root: a folder holding `tinyshakespeare.txt`, or the file; default `$LABNORM_DATA`, else the cache.
        download: fetch the canonical file when none is found (its SHA-256 is checked like any other).
        val_fraction: the share of characters, at the end, that validate (0.1: nanoGPT's split).

    Each call returns its own tensors. A file whose SHA-256 is not the canonical one: `CorruptArchiveError`.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"load_tinyshakespeare: val_fraction must be in (0, 1), got {val_fraction!r}")
    path = _find_text(root, download)
    # The checksum comes first, always: nothing is read from a file that fails it
    digest = verify_tinyshakespeare(path)
    if digest not in _MEMO:
        text = path.read_bytes().decode("utf-8")
        chars = tuple(sorted(set(text)))
        # Characters -> ids by one table lookup over the code points
        table = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
        table[[ord(c) for c in chars]] = np.arange(len(chars))
        _MEMO[digest] = (table[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)], chars)
    ids, chars = _MEMO[digest]
    # nanoGPT's split: $\lfloor (1 - f) n \rfloor$ characters train
    n_train = int(len(ids) * (1 - val_fraction))
    return CharText(torch.from_numpy(ids[:n_train].copy()), torch.from_numpy(ids[n_train:].copy()), chars)


def random_windows(tokens: torch.Tensor, batch_size: int, context: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` windows at random offsets: inputs $x = t_{s..s+T-1}$ and targets $y = t_{s+1..s+T}$, $[B, T]$."""
    if len(tokens) <= context:
        raise ValueError(f"random_windows: {len(tokens)} tokens make no window of {context} + 1")
    starts = torch.randint(0, len(tokens) - context, (batch_size,), generator=generator)
    rows = starts[:, None] + torch.arange(context + 1)
    w = tokens[rows]
    return w[:, :-1], w[:, 1:]


def eval_windows(tokens: torch.Tensor, context: int, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping windows from the start of `tokens` (at most `count`; all by default):
    a fixed evaluation set, the same for every model and seed."""
    n = (len(tokens) - 1) // context
    n = n if count is None else min(n, count)
    w = tokens[: n * context + 1]
    x = w[:-1].reshape(n, context)
    y = w[1:].reshape(n, context)
    return x, y

