"""Tiny Shakespeare: found as CIFAR-10 is, always checksum-verified, split 90/10, encoded and decoded exactly."""

import os
from pathlib import Path

import pytest
import torch

from labnorm import text
from labnorm.data import CorruptArchiveError
from labnorm.text import (TINYSHAKESPEARE_FILE, TINYSHAKESPEARE_SHA256, eval_windows, load_tinyshakespeare,
                          random_windows, unigram_entropy)

DATA = Path(os.environ.get("LABNORM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SHARED = DATA / TINYSHAKESPEARE_FILE
needs_file = pytest.mark.skipif(not SHARED.is_file(), reason=f"no {SHARED}")


@needs_file
def test_split_sizes_vocabulary_and_first_line():
    data = load_tinyshakespeare(DATA, download=False)
    n = 1_115_394  # characters, as the data README states
    assert len(data.train) == int(n * 0.9) == 1_003_854 and len(data.val) == n - 1_003_854 == 111_540
    assert data.vocab_size == 65 and data.chars[:2] == ("\n", " ") and list(data.chars) == sorted(data.chars)
    assert data.train.dtype == data.val.dtype == torch.int64
    assert data.decode(data.train[:14]) == "First Citizen:"
    # The file itself may be given, and each load hands out its own tensors
    again = load_tinyshakespeare(SHARED, download=False)
    again.train[0] = 7
    assert load_tinyshakespeare(DATA, download=False).train[0] == data.train[0]


@needs_file
def test_encode_decode_round_trip_and_bad_input():
    data = load_tinyshakespeare(DATA, download=False)
    assert data.decode(data.encode(data.decode(data.val[:500]))) == data.decode(data.val[:500])
    assert torch.equal(data.encode(data.decode(data.val[:500])), data.val[:500])
    with pytest.raises(ValueError, match=r"\['~'\] are not in the 65-character vocabulary"):
        data.encode("a~b")
    with pytest.raises(ValueError, match="outside 0..64"):
        data.decode([3, 65])


@needs_file
def test_unigram_entropy_is_that_of_the_training_characters():
    data = load_tinyshakespeare(DATA, download=False)
    h = data.unigram_entropy()
    assert 3.30 < h < 3.32  # nats per character; log(65) = 4.17 for a uniform guess
    assert unigram_entropy(torch.tensor([0, 1, 0, 1]), 5) == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_a_file_with_another_checksum_is_refused_before_it_is_read(tmp_path):
    bad = tmp_path / TINYSHAKESPEARE_FILE
    bad.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    with pytest.raises(CorruptArchiveError, match=rf"SHA-256 is [0-9a-f]{{64}}, expected {TINYSHAKESPEARE_SHA256}"):
        load_tinyshakespeare(tmp_path, download=False)


def test_a_missing_file_names_the_folder_and_the_way_out(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no tinyshakespeare.txt in .*download=True.*LABNORM_DATA"):
        load_tinyshakespeare(tmp_path, download=False)


def test_the_download_lands_in_the_folder_and_is_checked(tmp_path, monkeypatch):
    # No network here: the download is replaced by a copy that writes a wrong file, which must be refused
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("not Shakespeare")

    monkeypatch.setattr(text, "_download", fake)
    monkeypatch.delenv("LABNORM_DATA", raising=False)
    monkeypatch.setenv("LABNORM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CorruptArchiveError):
        load_tinyshakespeare()
    assert calls == [text.TINYSHAKESPEARE_URL] and (tmp_path / "cache" / TINYSHAKESPEARE_FILE).is_file()


def test_windows_are_shifted_by_one_and_the_eval_set_is_fixed():
    tokens = torch.arange(100)
    g = torch.Generator().manual_seed(0)
    x, y = random_windows(tokens, 4, 8, g)
    assert x.shape == y.shape == (4, 8) and torch.equal(y, x + 1) and int(y.max()) <= 99
    x, y = eval_windows(tokens, 8)
    assert x.shape == (12, 8) and torch.equal(x[1], torch.arange(8, 16)) and torch.equal(y, x + 1)
    assert eval_windows(tokens, 8, count=3)[0].shape == (3, 8)
    with pytest.raises(ValueError, match="no window"):
        random_windows(torch.arange(5), 2, 8, g)
    with pytest.raises(ValueError, match="val_fraction"):
        load_tinyshakespeare(val_fraction=1.0)
