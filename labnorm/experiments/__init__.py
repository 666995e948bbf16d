r"""Experiments: one module per experiment, run over seeds, judged by intervals, reported once.

Each module of this package is one experiment, named as the experiment
(`bn_gn_batch_size.py`, ...). It holds its sizes at each scale as data (a frozen dataclass
per scale), `run(config, seed, device)`, the `metrics(details)` it summarizes over seeds and
`report(record)` — the tables, figures and verdicts that both its notebook and the results
page show. `runner` finds them, runs seeds (resumably) and saves one record per experiment and
scale; `report` holds the pieces reports are built from.

```bash
python -m labnorm run bn_gn_batch_size --scale cpu --seeds 3   # seeds 0, 1, 2; resumable
```
"""

from .report import Figure, Report, Table, bands, cell, interval_errors, judge, ranking, seed_details
from .runner import (Experiment, SeedResult, default_device, experiments, get, load, load_or_run, reference, run, summary,
                     values)

__all__ = ["Experiment", "SeedResult", "experiments", "get", "run", "load", "reference", "load_or_run", "default_device",
           "values", "summary", "Report", "Table", "Figure", "cell", "judge", "ranking", "bands", "interval_errors",
           "seed_details"]
