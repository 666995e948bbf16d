"""A unit record brought to its experiment's current config after a change, no run lost (`migrate_units`).

A change of an experiment's config mid-record (a new ablation unit, a rule's runs renamed to an ablation) leaves the
saved record with the old config, which `run` refuses to add to (`units.check_config`). Rather than a hand-written
edit of the JSON — where a unit renamed in the details but not in the unit provenance once stopped a run at its
first save — `migrate_units` does the whole change under the record's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .. import results as _results
from .runner import _finish, _jsonable, get
from .units import pool_provenance

__all__ = ["migrate_units"]


def migrate_units(name: str, scale: str, renames: dict[str, str] | None = None,
                  fix: Callable[[str, dict[str, Any]], None] | None = None, directory: Path | None = None) -> dict[str, Any]:
    """Bring a unit record to its experiment's current config after a change of config, under the record's lock.

    The runs a change keeps stay; the record's config and unit list become the current ones; `renames` gives the
    units the change renamed (old -> new), renamed in the details and in the unit provenance alike; `fix(unit,
    details)` edits a unit's details in place (say, a variant field that the new name changes); then every seed's
    metrics and provenance are computed again. A run whose unit is not in the new list is refused (its result
    would be dropped unseen): rename it to a kept ablation unit first. Returns the saved record.
    """
    exp = get(name)
    config = exp.configs[scale]
    path = _results.record_path(name, scale, directory)
    units, renames = list(exp.units(config)), renames or {}
    if len(set(renames.values())) != len(renames):
        raise ValueError(f"migrate_units: two units renamed to one name in {renames}")

    def change(record: dict[str, Any] | None) -> dict[str, Any]:
        if record is None:
            raise FileNotFoundError(f"migrate_units: no record {path.name} to migrate")
        for seed, entry in record["per_seed"].items():
            old = entry["details"]["units"]
            new = {renames.get(u, u): d for u, d in old.items()}
            if len(new) != len(old):
                raise ValueError(f"migrate_units: seed {seed}: a rename lands on a unit that is already there")
            lost = [u for u in new if u not in units]
            if lost:
                raise ValueError(f"migrate_units: seed {seed} holds runs of units the new config lacks: {lost}")
            for u, d in new.items():
                if fix is not None:
                    fix(u, d)
            prov = {renames.get(u, u): p for u, p in entry["unit_provenance"].items()}
            entry["details"]["units"] = {u: new[u] for u in units if u in new}
            entry["unit_provenance"] = {u: prov[u] for u in entry["details"]["units"]}
            entry["provenance"] = pool_provenance(list(entry["unit_provenance"].values()))
            entry["metrics"] = exp.metrics(entry["details"])
        record["config"], record["units"] = _jsonable(config), units
        return _finish(record, exp)

    return _results.update_record(path, change)
