"""Scales, results files with provenance, benchmarks, images in results, and the norm factory.

The experiment runner, its records and the CLI are tested in test_experiments.py."""

import json
import subprocess
import sys

import pytest
import torch

import labnorm
from labnorm import results, scale
from labnorm.models import SmallCNN
from labnorm.norms import available_norms, make_norm


def test_scale_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LABNORM_SCALE", "smoke")
    assert scale.get_scale() == "smoke"
    assert scale.pick(smoke=1, cpu=2, gpu=3) == 1
    assert scale.pick(smoke=1, cpu=2, gpu=3, scale="gpu") == 3
    monkeypatch.delenv("LABNORM_SCALE")
    assert scale.get_scale() == "cpu"
    monkeypatch.setenv("LABNORM_SCALE", "huge")
    with pytest.raises(ValueError, match=r"\$LABNORM_SCALE must be one of smoke, cpu, gpu; got 'huge'"):
        scale.get_scale()


def test_norm_factory():
    assert {"none", "bn", "gn", "torch-bn", "torch-gn"} <= set(available_norms())
    assert isinstance(make_norm("bn", 8), labnorm.BatchNorm2d)
    gn = make_norm("gn", 48)
    assert isinstance(gn, labnorm.GroupNorm) and gn.num_groups == 16  # gcd(48, 32)
    assert make_norm("gn:4", 8).num_groups == 4
    assert isinstance(make_norm("sn", 8), labnorm.SwitchNorm2d) and make_norm("sn", 8).momentum == 0.1
    assert make_norm("sn:0.98", 8).momentum == 0.02  # the argument is Keras' momentum
    with pytest.raises(ValueError, match="unknown norm 'xn'"):
        make_norm("xn", 8)


@pytest.mark.parametrize("norm", ["none", "bn", "gn:8", "torch-bn"])
def test_small_cnn_forward(norm):
    out = SmallCNN(norm=norm, width=8)(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_labnorm_and_torch_norms_train_the_same_model_identically():
    # The factory's labnorm BN and torch BN are interchangeable inside a model.
    torch.manual_seed(0)
    a = SmallCNN(norm="bn", width=8).double()
    b = SmallCNN(norm="torch-bn", width=8).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    assert torch.allclose(a(x), b(x), atol=1e-10)


def test_code_version_ignores_saved_results_but_not_code(tmp_path, monkeypatch):
    """A run that rewrote a committed results file leaves the next run's code clean; an edited module does not."""
    repo = tmp_path / "repo"
    for rel in ("labnorm/mod.py", "results/a.json", "benchmarks/results/b.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    monkeypatch.setattr(results, "_REPO_ROOT", repo)
    assert results.code_version()["commit_dirty"] is False
    (repo / "results/a.json").write_text("2\n")
    (repo / "benchmarks/results/b.json").write_text("2\n")
    assert results.code_version()["commit_dirty"] is False
    (repo / "labnorm/mod.py").write_text("2\n")
    assert results.code_version()["commit_dirty"] is True


def test_save_benchmark_writes_rows_with_provenance(tmp_path):
    path = results.save_benchmark("demo", torch.device("cpu"), 1.5, directory=tmp_path, rows=[{"ratio": 2.0}])
    rec = json.loads(path.read_text())
    assert path.name == "demo__cpu.json" and rec["benchmark"] == "demo" and rec["rows"] == [{"ratio": 2.0}]
    assert rec["provenance"]["scale"] == "benchmark" and rec["provenance"]["torch"] == torch.__version__


def test_committed_benchmarks_carry_provenance():
    for path in sorted(results.benchmarks_dir().glob("*.json")):
        rec = json.loads(path.read_text())
        assert rec["rows"] and {"commit", "torch", "device", "date"} <= set(rec["provenance"]), path.name


def test_save_and_load_benchmark_use_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_BENCHMARKS", str(tmp_path))
    path = results.save_benchmark("demo", torch.device("cpu"), 1.5, rows=[{"ratio": 2.0}])
    assert path.parent == tmp_path
    rec = results.load_benchmark("demo")
    assert rec["rows"] == [{"ratio": 2.0}]
    assert results.provenance_line(rec).startswith("benchmark demo · scale=benchmark")
    assert results.load_benchmark("missing") is None


def test_images_travel_in_results_as_text():
    image = torch.randint(0, 256, (8, 12, 3), dtype=torch.uint8)
    text = results.encode_image(image)
    assert isinstance(text, str) and (results.decode_image(text) == image.numpy()).all()
    with pytest.raises(ValueError, match="encode_image: expected uint8"):
        results.encode_image(image.float())
