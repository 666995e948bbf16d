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
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from tqdm import tqdm

from .. import results as _results

__all__ = ["AllUnits", "run_units", "missing_units", "partial_summary", "pool_provenance"]


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
            "date": max(p.get("date", "") for p in provs)}


def run_units(exp, record: dict[str, Any], config: Any, scale: str, seeds: list[int], device: torch.device, *,
              save: bool, show: bool, finish) -> None:
    """Run every missing (unit, seed) of `record`, saving it after each one when `save` (see the module doc)."""
    units = record["units"]
    todo = [(u, s) for u in units for s in seeds
            if u not in record["per_seed"].get(str(s), {}).get("details", {}).get("units", {})]
    for unit, seed in tqdm(todo, desc=f"{exp.name} ({scale})", unit="unit", disable=not show):
        code = _results.code_version()  # taken at the start: edits made while it runs do not count
        t0 = time.perf_counter()
        result = _run_unit(exp, config, seed, unit, device)
        prov = _results.provenance(scale=scale, seed=seed, dataset=result.dataset, device=device,
                                   wall_time_s=time.perf_counter() - t0, code=code)
        entry = record["per_seed"].setdefault(str(seed), {"details": {"units": {}}, "unit_provenance": {}})
        entry["details"]["units"][unit] = result.details
        entry["unit_provenance"][unit] = prov
        # Keep the units in the experiment's order, whatever order they ran in
        entry["details"]["units"] = {u: entry["details"]["units"][u] for u in units if u in entry["details"]["units"]}
        entry["unit_provenance"] = {u: entry["unit_provenance"][u] for u in entry["details"]["units"]}
        entry["provenance"] = pool_provenance(list(entry["unit_provenance"].values()))
        entry["metrics"] = exp.metrics(entry["details"])
        finish(record, exp)
        if save:
            record["path"] = _results.save_record(record).name


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
