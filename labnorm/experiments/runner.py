r"""The experiment runner: registry, seed loop, provenance and saving.

An experiment is one module of this package that defines `EXPERIMENT = Experiment(...)`:

- `configs`: its sizes at each scale (`smoke`, `cpu`, `gpu`), one frozen dataclass per scale;
- `run(config, seed, device) -> SeedResult`: one seed's run (its details, dataset, arrays);
- `metrics(details) -> {name: value}`: the scalars that are summarized over seeds;
- `report(record) -> Report`: the tables, figures and verdicts that both its notebook and the
  site's results page show;
- optionally `units(config)` and `run_unit(config, seed, unit, device)`: a seed made of units,
  saved after every unit (`labnorm.experiments.units`; `run` may then be None).

The registry finds every such module by itself (`pkgutil`), so a new experiment needs no edit
anywhere else in the package. `run(name, scale, seeds=3)` runs seeds 0, 1, 2 with a progress
bar and saves the record after **each** seed (each unit, for units): a seed that has finished is
kept, and running the same command again runs only the seeds (units) that are missing. Processes
that run one experiment at once all land in its record (`units.run_claimed`); a damaged record is
named (`results.RecordError`) and never overwritten unless `fresh`, which keeps a copy.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import numbers
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .. import results as _results
from ..progress import progress_enabled
from ..scale import SCALES, get_scale
from ..stats import summarize
from .units import AllUnits, check_config, pool_provenance, run_seeds, run_units

__all__ = ["SeedResult", "Experiment", "experiments", "get", "run", "check_run", "load", "reference", "load_or_run",
           "default_device", "values", "summary"]

_NOT_EXPERIMENTS = {"runner", "report", "tables", "plots", "common", "units", "migrate", "claims"}  # modules of this package that are not experiments


@dataclass(frozen=True)
class SeedResult:
    """What one seed of an experiment produced.

    `details` is JSON (curves, per-epoch logs, per-run figures) read by `report()` and by the
    experiment's `metrics()`; `dataset` names the data variant (e.g. "CIFAR-10 (JPEG q75 copy)");
    `arrays` holds large NumPy arrays (loss surfaces), saved beside the record in a `.npz`.
    """

    details: dict[str, Any]
    dataset: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """One registered experiment (see the module doc)."""

    name: str
    description: str
    configs: Mapping[str, Any]
    run: Callable[[Any, int, torch.device], SeedResult] | None
    metrics: Callable[[dict[str, Any]], dict[str, float | None]]
    report: Callable[[dict[str, Any]], Any]
    units: Callable[[Any], list[str]] | None = None
    run_unit: Callable[[Any, int, str, torch.device], SeedResult] | None = None

    def __post_init__(self) -> None:
        if set(self.configs) != set(SCALES):
            raise ValueError(f"experiment {self.name!r}: configs must be given for {SCALES}, got {sorted(self.configs)}")
        made = self.run is None or isinstance(self.run, AllUnits)  # a whole seed as its units in turn (dry runs)
        if (self.units is None) != (self.run_unit is None) or (made and self.units is None):
            raise ValueError(f"experiment {self.name!r}: give run, or units and run_unit (a seed made of units)")
        if made:  # (made again for a copy: dataclasses.replace passes the original's)
            object.__setattr__(self, "run", AllUnits(self))

    def config(self, scale: str | None = None) -> Any:
        """The config at `scale` (default `$LABNORM_SCALE`)."""
        return self.configs[get_scale(scale)]


_REGISTRY: dict[str, Experiment] = {}


def experiments() -> dict[str, Experiment]:
    """Every experiment of this package, by name (each module's `EXPERIMENT`)."""
    if not _REGISTRY:
        from . import __path__ as package_path

        for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
            if info.name in _NOT_EXPERIMENTS or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__package__}.{info.name}")
            exp = getattr(module, "EXPERIMENT", None)
            if not isinstance(exp, Experiment):
                raise TypeError(f"labnorm.experiments.{info.name} defines no EXPERIMENT = Experiment(...)")
            if exp.name != info.name:
                raise ValueError(f"labnorm.experiments.{info.name}: the experiment is named {exp.name!r}; "
                                 "name the module as the experiment")
            _REGISTRY[exp.name] = exp
    return _REGISTRY


def get(name: str) -> Experiment:
    """The experiment called `name`, or a `ValueError` listing the known ones."""
    known = experiments()
    if name not in known:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _jsonable(config: Any) -> dict[str, Any]:
    # A frozen dataclass -> plain JSON (tuples become lists), as it is stored in the record.
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, (bool, str, bytes)) or not isinstance(seeds, (numbers.Integral, Iterable)):
        raise TypeError(f"run: seeds must be a number of seeds or a list of seeds, got {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise ValueError(f"run: seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"run: each seed must be an integer, got {s!r}")
        if s < 0:
            raise ValueError(f"run: a seed must be >= 0, got {s}")
    if not seeds:
        raise ValueError("run: no seeds given")
    return sorted(set(int(s) for s in seeds))


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:  # "" and unknown names
        raise ValueError(f"run: device must name a torch device such as 'cpu' or 'cuda', got {device!r} ({e})") \
            from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"run: device {device!r} is not available here (torch.cuda.is_available() is False)")
    return dev


def check_run(name: str, scale: str | None = None, seeds: int | Iterable[int] = 1, device: str | None = None):
    """`run`'s arguments checked, as `(experiment, scale, seeds, device)`: the errors `run` gives, before any work
    (the command line checks its options with it, so both refuse the same values with the same words)."""
    return get(name), get_scale(scale), _seed_list(seeds), _device(device)


def _new_record(exp: Experiment, scale: str, config: Any) -> dict[str, Any]:
    return {"experiment": exp.name, "description": exp.description, "scale": scale, "config": _jsonable(config),
            "seeds": [], "summary": {}, "per_seed": {}, "provenance": {},
            **({"units": list(exp.units(config))} if exp.units is not None else {})}


def _finish(record: dict[str, Any], exp: Experiment) -> dict[str, Any]:
    """Fill in the seeds, every metric's summary over them and the pooled provenance."""
    seeds = sorted(int(s) for s in record["per_seed"])
    entries = [record["per_seed"][str(s)] for s in seeds]
    for entry in entries:
        if not entry["metrics"]:  # a converted one-seed record: compute its metrics once
            entry["metrics"] = exp.metrics(entry["details"])
    names = list(dict.fromkeys(k for e in entries for k in e["metrics"]))
    record["seeds"] = seeds
    record["summary"] = {k: summarize([e["metrics"].get(k) for e in entries]).as_dict() for k in names}
    pooled = pool_provenance([e["provenance"] for e in entries])
    record["provenance"] = {**{k: v for k, v in pooled.items() if k != "seed"}, "scale": record["scale"], "seeds": seeds}
    return record


def load(name: str, scale: str | None = None) -> dict[str, Any] | None:
    """The saved record of `name` at `scale` (default `$LABNORM_SCALE`), summarized; None if there is none.
    A damaged one raises `labnorm.results.RecordError`, naming the file and what is wrong with it."""
    exp = get(name)
    path = _results.find_record(name, get_scale(scale))
    if path is None:
        return None
    return {**_finish(_results.load_record(path), exp), "source": "saved"}


def reference(name: str) -> dict[str, Any] | None:
    """The saved record of `name` at the largest scale there is (a gpu run first), or None."""
    for scale in reversed(SCALES):
        record = load(name, scale)
        if record is not None:
            return record
    return None


def run(
    name: str, scale: str | None = None, seeds: int | Iterable[int] = 1, *, device: str | None = None,
    save: bool = True, fresh: bool = False, progress: bool | None = None,
) -> dict[str, Any]:
    """Run experiment `name` at `scale` over `seeds` (an int n means seeds 0..n-1); return its record.

    With `save`, the record `results/<name>__<scale>.json` is written after every seed, and seeds
    it already holds are kept, not rerun — unless `fresh`, which starts a new record. A saved
    record made with another config is refused (its seeds would not be comparable), and so is a
    damaged one (`results.RecordError`) unless `fresh`, which first moves it aside, every byte kept.
    Other processes may run the same experiment at once: their seeds are kept, and a seed one of
    them is running now is left to it (`results.RecordBusyError` at the end, naming it).
    """
    exp, scale, wanted, dev = check_run(name, scale, seeds, device)
    config = exp.config(scale)
    target, path = _results.record_path(name, scale), _results.find_record(name, scale) if save else None
    record = _results.load_for_update(path, fresh=fresh)  # a damaged record: named, left alone unless fresh
    if record is not None:
        check_config(record, _jsonable(config), path)
    record = record or _new_record(exp, scale, config)
    legacy = record["seeds"][0] if path is not None and path != target and record["seeds"] else None
    record.pop("converted_from", None)  # an earlier one-seed file: its seed moves into the record
    show = progress_enabled() if progress is None else progress
    # Saved after every seed (every unit of every seed), merged into the record as it is on disk then
    runs = run_units if exp.units is not None else run_seeds
    record = runs(exp, record, config, scale, wanted, dev, save=save, fresh=fresh, show=show, finish=_finish)
    if save and target.is_file():  # the record as saved, with every seed's arrays (checked)
        record = {**_results.load_record(target), "path": target.name}
        if legacy is not None and path.is_file() and str(legacy) in record["per_seed"]:
            path.unlink()  # the earlier one-seed file now lives inside the record
    return {**_finish(record, exp), "source": "live"}


def load_or_run(name: str, scale: str | None = None, *, rerun: bool = False) -> dict[str, Any]:
    """The saved record of `name` at `scale` if there is one (and not `rerun`), else a live run of
    seed 0 (not saved). The record's `"source"` says which: `"saved"` or `"live"`."""
    record = None if rerun else load(name, scale)
    return record if record is not None else run(name, scale, seeds=1, save=False)


def values(record: dict[str, Any], metric: str) -> list[float | None]:
    """One value of `metric` per seed of `record`, in seed order (None where a seed has none)."""
    return [record["per_seed"][str(s)]["metrics"].get(metric) for s in record["seeds"]]


def summary(record: dict[str, Any], metric: str):
    """The `labnorm.stats.Summary` of `metric` over the record's seeds."""
    return summarize(values(record, metric))
