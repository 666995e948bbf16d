"""Scales, results files with provenance, the norm factory, the experiment runner and CLI."""

import json
import subprocess
import sys

import pytest
import torch

import labnorm
from labnorm import results, scale
from labnorm.experiments import EXPERIMENTS, run_experiment
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


def _record(name="demo", scale_="cpu", seed=0):
    prov = results.provenance(scale=scale_, seed=seed, dataset="toy", device="cpu", wall_time_s=1.234)
    return {"experiment": name, "config": {"a": 1}, "metrics": {"acc": 0.5}, "provenance": prov}


def test_results_round_trip_with_provenance(tmp_path):
    path = results.save_results(_record(), tmp_path)
    assert path.name == "demo__cpu__seed0.json"
    rec = results.load_results(path)
    for key in ("commit", "torch", "device", "scale", "dataset", "seed", "wall_time_s", "date", "labnorm_version"):
        assert key in rec["provenance"], key
    assert rec["provenance"]["torch"] == torch.__version__
    line = results.provenance_line(rec)
    assert "scale=cpu" in line and "toy" in line and torch.__version__ in line
    with pytest.raises(ValueError, match="lacks 'provenance'"):
        results.save_results({"experiment": "x", "config": {}, "metrics": {}}, tmp_path)


def test_results_arrays_travel_in_a_checksummed_npz(tmp_path):
    import numpy as np

    rec = {**_record(), "arrays": {"bn/2d_loss": np.arange(6.0).reshape(2, 3), "steps": np.arange(4)}}
    path = results.save_results(rec, tmp_path)
    saved = json.loads(path.read_text())
    assert "arrays" not in saved and saved["arrays_file"] == "demo__cpu__seed0.npz"
    back = results.load_results(path)
    np.testing.assert_array_equal(back["arrays"]["bn/2d_loss"], rec["arrays"]["bn/2d_loss"])
    np.testing.assert_array_equal(back["arrays"]["steps"], np.arange(4))
    # Arrays from another run are refused
    np.savez_compressed(tmp_path / "demo__cpu__seed0.npz", steps=np.zeros(4))
    with pytest.raises(ValueError, match="checksum"):
        results.load_results(path)


def test_run_experiment_moves_arrays_out_of_the_metrics(tmp_path, monkeypatch):
    import numpy as np

    from labnorm import experiments

    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    monkeypatch.setitem(EXPERIMENTS, "arr", experiments.Experiment(
        "arr", "a test", lambda s, seed, d: ({}, {"value": 1, "arrays": {"x": np.ones(3)}}, "toy")))
    rec = run_experiment("arr", "smoke")
    assert rec["metrics"] == {"value": 1} and rec["arrays"]["x"].tolist() == [1, 1, 1]
    assert (tmp_path / "arr__smoke__seed0.npz").is_file()
    assert experiments.load_or_run("arr", "smoke")["arrays"]["x"].tolist() == [1, 1, 1]


def test_find_reference_prefers_the_largest_scale(tmp_path):
    assert results.find_reference("demo", tmp_path) is None
    results.save_results(_record(scale_="smoke"), tmp_path)
    assert results.find_reference("demo", tmp_path)["provenance"]["scale"] == "smoke"
    results.save_results(_record(scale_="gpu"), tmp_path)
    results.save_results(_record(scale_="cpu"), tmp_path)
    assert results.find_reference("demo", tmp_path)["provenance"]["scale"] == "gpu"


def _fake_experiment(scale_, seed, device):
    return {"n": 3}, {"value": seed + 0.5}, "toy"


def test_run_experiment_saves_a_record(tmp_path, monkeypatch):
    from labnorm import experiments

    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    monkeypatch.setitem(EXPERIMENTS, "fake", experiments.Experiment("fake", "a test", _fake_experiment))
    rec = run_experiment("fake", "smoke", seed=2)
    saved = json.loads((tmp_path / "fake__smoke__seed2.json").read_text())
    assert saved["metrics"] == {"value": 2.5} and saved["config"] == {"n": 3}
    assert saved["provenance"]["scale"] == "smoke" and saved["provenance"]["seed"] == 2
    assert rec["provenance"]["dataset"] == "toy"
    with pytest.raises(ValueError, match="unknown experiment"):
        run_experiment("nope", "smoke")


def test_cli_lists_experiments(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "labnorm", "list"], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "LABNORM_RESULTS": str(tmp_path)},
    ).stdout
    assert "bn_gn_batch_size" in out and "saved: none" in out


def test_committed_results_carry_provenance():
    for path in sorted(results.results_dir().glob("*.json")):
        rec = results.load_results(path)
        prov = rec["provenance"]
        for key in ("commit", "torch", "device", "scale", "dataset", "seed", "wall_time_s", "date"):
            assert prov.get(key) not in (None, ""), f"{path.name}: {key}"
        assert path.name == f"{rec['experiment']}__{prov['scale']}__seed{prov['seed']}.json"


def test_load_or_run_prefers_the_saved_run(tmp_path, monkeypatch):
    from labnorm import experiments

    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    calls = []

    def counting(scale_, seed, device):
        calls.append(scale_)
        return {"n": 1}, {"value": len(calls)}, "toy"

    monkeypatch.setitem(EXPERIMENTS, "counted", experiments.Experiment("counted", "a test", counting))
    live = experiments.load_or_run("counted", "smoke")
    assert live["source"] == "live" and calls == ["smoke"]
    assert not list(tmp_path.glob("*.json")), "a live run is not saved"
    run_experiment("counted", "smoke")  # saved: value 2
    saved = experiments.load_or_run("counted", "smoke")
    assert saved["source"] == "saved" and saved["metrics"] == {"value": 2} and len(calls) == 2
    assert experiments.load_or_run("counted", "smoke", rerun=True)["source"] == "live"


def test_results_json_schema():
    """Every committed results file: top-level keys, and provenance with every field STYLE.md §5 asks for."""
    for path in sorted(results.results_dir().glob("*.json")):
        rec = json.loads(path.read_text())
        assert {"experiment", "description", "config", "metrics", "provenance"} <= set(rec), path.name
        assert rec["experiment"] in EXPERIMENTS, path.name
        prov = rec["provenance"]
        assert {"labnorm_version", "commit", "commit_dirty", "torch", "python", "device", "scale", "dataset",
                "seed", "wall_time_s", "date"} <= set(prov), path.name
        assert prov["commit_dirty"] is False, f"{path.name} was run from uncommitted code"


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
    folder = results._REPO_ROOT / "benchmarks" / "results"
    for path in sorted(folder.glob("*.json")):
        rec = json.loads(path.read_text())
        assert rec["rows"] and {"commit", "torch", "device", "date"} <= set(rec["provenance"]), path.name


def test_load_benchmark_and_its_provenance_line(tmp_path, monkeypatch):
    results.save_benchmark("demo", torch.device("cpu"), 1.5, directory=tmp_path / "benchmarks" / "results",
                           rows=[{"ratio": 2.0}])
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path / "results"))  # benchmarks/ sits beside results/
    rec = results.load_benchmark("demo")
    assert rec["rows"] == [{"ratio": 2.0}]
    assert results.provenance_line(rec).startswith("benchmark demo · scale=benchmark")
    assert results.load_benchmark("missing") is None


def test_blow_up_rule_and_dead_channel_count():
    from labnorm.experiments import _blow_up_step, _dead_channel_fraction

    assert _blow_up_step([2.3] * 200) is None
    assert _blow_up_step([2.3] * 39 + [50.0] * 10) == 43  # the smoothed loss passes 4x its best 4 steps later
    assert _blow_up_step([2.3, 2.2, float("inf")]) == 3
    # 4 channels, one of them pushed negative everywhere: a quarter of the channels is dead
    conv = torch.nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.fill_(0.0)
        conv.bias.copy_(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    model = torch.nn.Sequential(conv, torch.nn.ReLU())
    assert _dead_channel_fraction(model, torch.randn(3, 1, 5, 5)) == 0.25


def test_images_travel_in_results_as_text():
    image = torch.randint(0, 256, (8, 12, 3), dtype=torch.uint8)
    text = results.encode_image(image)
    assert isinstance(text, str) and (results.decode_image(text) == image.numpy()).all()
    with pytest.raises(ValueError, match="encode_image: expected uint8"):
        results.encode_image(image.float())
