r"""Experiments made of units: saved after every (unit, seed), resumed by skipping finished units.

A seed of most experiments takes minutes, and `labnorm.experiments.run` saves the record after
every seed. A seed of a big comparison table (every norm × every batch size) takes hours; a stop
would lose all of it. Such an experiment names its **units** — e.g. one training run per
`"norm/bB"` — and how to run one:

- `units(config) -> list[str]`: the units of one seed, in the order they should run;
- `run_unit(config, seed, unit, device) -> SeedResult`: one unit of one seed (its details and
  dataset; units save no arrays).

`run` then goes unit by unit, and for each unit over the seeds (so the first finished units
already carry an interval over seeds), and writes the record atomically after every unit of every
seed. A seed's entry in the record is assembled from its units:

| field | what |
|---|---|
| `details` | `{"units": {unit: that unit's details}}`, in the order of `units(config)`: what `metrics(details)` and `report(record)` read |
| `unit_provenance` | `{unit: provenance}`: each unit's own commit, device, wall time and date |
| `provenance` | pooled over the seed's units: their commits, "dirty" if any was, the sum of their wall times, the last date |

Running the same command again skips the units a seed already holds. A record is **partial**
while some unit of a seed is missing: `metrics` and `report` work on it as it is, and
`missing_units(record)` says what is left, so a partial table can say so. The experiment's
`run(config, seed, device)` — which the dry run calls — is made from the units (`AllUnits`),
so it needs no code of its own.

**Several processes, one record.** `run_claimed` is the loop both kinds of experiment save
through (a plain experiment's seed is one piece, a unit experiment's (unit, seed) is one). Before a
piece runs, its process claims it (`labnorm.results.claim`) and looks at the record on disk again:
a piece another process has finished meanwhile is taken from there, one it is running *now* is left
to it and named at the end (`RecordBusyError`, after every other piece has run and been saved). A
finished piece is merged into the record as it is on disk at that moment, under the record's lock
(`labnorm.results.update_record`): a seed that another process saved since this one started is
kept, never overwritten by this process's older copy.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from .. import results as _results

__all__ = ["AllUnits", "run_seeds", "run_units", "run_claimed", "check_config", "missing_units", "partial_summary",
           "pool_provenance"]


def _run_unit(exp, config: Any, seed: int, unit: str, device: torch.device):
    torch.manual_seed(seed)
    result = exp.run_unit(config, seed, unit, device)
    if result.arrays:
        raise ValueError(f"experiment {exp.name!r}: unit {unit!r} returned arrays; the units of an experiment save "
                         "none (keep arrays in an experiment without units)")
    return result


class AllUnits:
    """The `run(config, seed, device)` of a unit experiment: every unit of the seed in turn, as one
    `SeedResult` with the details `{"units": {unit: details}}` (nothing saved)."""

    def __init__(self, exp) -> None:
        self.exp = exp

    def __call__(self, config: Any, seed: int, device: torch.device):
        from .runner import SeedResult

        done, dataset = {}, None
        for unit in self.exp.units(config):
            result = _run_unit(self.exp, config, seed, unit, device)
            done[unit], dataset = result.details, result.dataset
        return SeedResult({"units": done}, dataset or "")


def pool_provenance(provs: list[dict[str, Any]]) -> dict[str, Any]:
    """One provenance from several runs' (a seed's units, a record's seeds): a field the runs
    share, else their values joined by " / "; every commit; dirty if any was; wall times summed."""

    def pooled(key: str) -> Any:
        distinct = list(dict.fromkeys(str(p.get(key)) for p in provs))
        return provs[0].get(key) if len(distinct) == 1 else " / ".join(distinct)

    commits = list(dict.fromkeys(c or "unknown" for p in provs for c in p.get("commits") or [p.get("commit")]))
    return {**{k: pooled(k) for k in ("labnorm_version", "torch", "python", "device", "scale", "dataset", "seed")},
            "commit": commits[0], "commits": commits, "commit_dirty": any(p.get("commit_dirty") for p in provs),
            "wall_time_s": round(sum(p.get("wall_time_s", 0.0) for p in provs), 2),
            "date": max(p.get("date", "") for p in provs),
            **({"world_size": pooled("world_size")} if any("world_size" in p for p in provs) else {})}


def check_config(saved: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """A `ValueError` when the saved record was made with another config: its seeds would not compare."""
    if saved["config"] != config:
        changed = sorted(k for k in set(config) | set(saved["config"]) if config.get(k) != saved["config"].get(k))
        raise ValueError(
            f"run: {path.name} holds seeds {saved['seeds']} made with another {saved['scale']} config of "
            f"{saved['experiment']} (fields that differ: {', '.join(changed)}); rerun with fresh=True (--fresh) "
            "to start a new record")


def _has(record: dict[str, Any], unit: str | None, seed: int) -> bool:
    entry = record["per_seed"].get(str(seed))
    return entry is not None and (unit is None or unit in entry["details"].get("units", {}))


def run_claimed(exp, record: dict[str, Any], todo: list[tuple[str | None, int]], work: Callable[[str | None, int], Any],
                add: Callable[[dict[str, Any], str | None, int, Any], None], *, scale: str, save: bool, fresh: bool,
                show: bool, finish) -> dict[str, Any]:
    """Run each (unit, seed) of `todo` that `record` lacks (unit None: a whole seed) and return the
    record: `work(unit, seed)` computes one piece, `add(record, unit, seed, result)` puts it in.

    With `save`, one piece at a time is claimed, run and merged into the record on disk (module
    doc); `fresh`: the first save replaces the record there instead of merging into it.
    """
    path = _results.record_path(exp.name, scale)
    config, left = record["config"], []
    for unit, seed in tqdm(todo, desc=f"{exp.name} ({scale})", unit="seed" if exp.units is None else "unit",
                           disable=not show):
        if _has(record, unit, seed):
            continue  # finished earlier: kept
        what = f"seed {seed}" if unit is None else f"unit {unit} of seed {seed}"
        with contextlib.ExitStack() as held:
            if save:
                try:
                    held.enter_context(_results.claim(path, what))
                except _results.RecordBusyError as e:
                    left.append(str(e).split(": ", 1)[1])
                    continue
                if not fresh and path.is_file():  # finished by another process since this one read the record?
                    disk = _results.load_record(path, arrays=False)
                    if _has(disk, unit, seed):
                        check_config(disk, config, path)
                        record = finish(disk, exp)
                        continue
            result = work(unit, seed)
            if not save:
                add(record, unit, seed, result)
                finish(record, exp)
                continue

            def change(current: dict[str, Any] | None, base: dict[str, Any] = record) -> dict[str, Any]:
                merged = base if current is None else current
                check_config(merged, config, path)
                add(merged, unit, seed, result)
                return finish(merged, exp)

            record = _results.update_record(path, change, replace=fresh)
            fresh = False
    if left:
        holds = f"seeds {', '.join(map(str, record['seeds']))}" if record["seeds"] else "no seed yet"
        raise _results.RecordBusyError(f"{path.name}: {'; '.join(left)}; left to that process. The record holds "
                                       f"{holds}: run the same command again when it has finished")
    return record


def run_seeds(exp, record: dict[str, Any], config: Any, scale: str, seeds: list[int], device: torch.device, *,
              save: bool, fresh: bool = False, show: bool, finish) -> dict[str, Any]:
    """Run every missing seed of an experiment without units, saving the record after each one when `save`."""

    def work(_: None, seed: int):
        torch.manual_seed(seed)
        code = _results.code_version()  # taken at the start: edits made while it runs do not count
        t0 = time.perf_counter()
        result = exp.run(config, seed, device)
        prov = _results.provenance(scale=scale, seed=seed, dataset=result.dataset, device=device,
                                   wall_time_s=time.perf_counter() - t0, code=code)
        entry: dict[str, Any] = {"metrics": exp.metrics(result.details), "details": result.details, "provenance": prov}
        if result.arrays and save:  # the seed is claimed: its .npz is this process's alone
            npz = _results.arrays_path(exp.name, scale, seed)
            entry["arrays_sha256"], entry["arrays_file"] = _results.save_arrays(npz, result.arrays), npz.name
        return entry, result.arrays

    def add(rec: dict[str, Any], _: None, seed: int, done) -> None:
        rec["per_seed"][str(seed)] = done[0]
        if done[1] and not save:  # saved: the arrays are read back from the .npz with the record
            rec.setdefault("arrays", {})[str(seed)] = done[1]

    return run_claimed(exp, record, [(None, s) for s in seeds], work, add, scale=scale, save=save, fresh=fresh,
                       show=show, finish=finish)


def run_units(exp, record: dict[str, Any], config: Any, scale: str, seeds: list[int], device: torch.device, *,
              save: bool, fresh: bool = False, show: bool, finish) -> dict[str, Any]:
    """Run every missing (unit, seed) of `record`, saving it after each one when `save` (see the module doc)."""
    units = record["units"]

    def work(unit: str, seed: int):
        code = _results.code_version()  # taken at the start: edits made while it runs do not count
        t0 = time.perf_counter()
        result = _run_unit(exp, config, seed, unit, device)
        return result.details, _results.provenance(scale=scale, seed=seed, dataset=result.dataset, device=device,
                                                   wall_time_s=time.perf_counter() - t0, code=code)

    def add(rec: dict[str, Any], unit: str, seed: int, done) -> None:
        entry = rec["per_seed"].setdefault(str(seed), {"details": {"units": {}}, "unit_provenance": {}})
        entry["details"]["units"][unit], entry["unit_provenance"][unit] = done
        # Keep the units in the experiment's order, whatever order they ran in
        entry["details"]["units"] = {u: entry["details"]["units"][u] for u in units if u in entry["details"]["units"]}
        entry["unit_provenance"] = {u: entry["unit_provenance"][u] for u in entry["details"]["units"]}
        entry["provenance"] = pool_provenance(list(entry["unit_provenance"].values()))
        entry["metrics"] = exp.metrics(entry["details"])

    todo = [(u, s) for u in units for s in seeds]
    return run_claimed(exp, record, todo, work, add, scale=scale, save=save, fresh=fresh, show=show, finish=finish)


def missing_units(record: dict[str, Any]) -> dict[int, list[str]]:
    """The units each seed of a unit record still lacks (`{}` when it is complete, or has no units).

    Only the seeds the record holds are checked: a seed that never started is not listed."""
    units = record.get("units") or []
    out = {}
    for seed in record["seeds"]:
        have = record["per_seed"][str(seed)]["details"].get("units", {})
        left = [u for u in units if u not in have]
        if left:
            out[seed] = left
    return out


def partial_summary(record: dict[str, Any], split: Callable[[str], tuple[str, str]]) -> str:
    """What a partial record holds, one clause per group of units: runs done of runs planned, and
    which members lack which seeds. `split(unit)` gives (group, member), e.g. ("batch 2", "gn:4")
    for "gn:4/b2"; groups are listed in the order their first unit runs."""
    seeds = record["seeds"]
    have = {s: record["per_seed"][str(s)]["details"].get("units", {}) for s in seeds}
    groups: dict[str, dict[str, list[int]]] = {}
    for unit in record.get("units") or []:
        group, member = split(unit)
        groups.setdefault(group, {})[member] = [s for s in seeds if unit not in have[s]]
    parts = []
    for group, lacking in groups.items():
        done = sum(len(seeds) - len(v) for v in lacking.values())
        gaps = [m + ("" if len(v) == len(seeds) else f" (seed {', '.join(map(str, v))})")
                for m, v in lacking.items() if v]
        parts.append(f"{group}: not run yet" if not done else
                     f"{group}: {done} of {len(seeds) * len(lacking)} runs" + (f", missing {', '.join(gaps)}" if gaps else ", complete"))
    return "; ".join(parts) + "."
