"""Build the site's Results page from the saved records and benchmark results.

Called by `scripts/render_pages.py` (`make pages`): returns the page's Markdown and its PNG
figures, which it commits as `docs/results.md` and `docs/results/` (the site builds without torch). Every record is shown through its own
experiment's `report()` — the same tables, figures and verdicts as its notebook — with its
provenance. This script knows no experiment by name: a new experiment module appears here by
itself. Records are read from `labnorm.results.results_dir()` (`$LABNORM_RESULTS` when set),
benchmarks from `labnorm.results.benchmarks_dir()`.
"""

from __future__ import annotations

import json
from pathlib import Path

from labnorm import experiments, results
from labnorm.experiments import Table
from labnorm.scale import SCALES


def _provenance(rec: dict, repo_url: str) -> str:
    p = rec["provenance"]
    commits = p.get("commits") or [p.get("commit") or "unknown"]
    commit_md = ", ".join(f"[`{c[:10]}`]({repo_url}/commit/{c})" if c != "unknown" else "unknown" for c in commits)
    if p.get("commit_dirty"):
        commit_md += " (uncommitted changes)"
    seeds = p.get("seeds", [p.get("seed")])
    return Table(
        ["device", "scale", "dataset", "commit", "date", "wall time", "torch", "seeds"],
        [[p.get("device"), p.get("scale"), p.get("dataset") or "—", commit_md, (p.get("date") or "")[:10],
          f"{p.get('wall_time_s', 0) / 60:.1f} min", p.get("torch"), ", ".join(str(s) for s in seeds)]],
    ).markdown()


def _benchmark(rec: dict) -> str:
    rows = rec["rows"]
    # Rows may differ in their keys (e.g. one timing column per baseline): take them all, in order.
    header = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "shape"]

    def cell(r, k):
        v = r.get(k, "")
        if isinstance(v, dict):  # e.g. what ran: {"classes": {...}, "channels_last": True}
            return "; ".join(f"{a}: {cell(v, a)}" for a in v)
        if isinstance(v, list):
            return ", ".join(str(x) for x in v) or "—"
        return f"{v:.3g}" if isinstance(v, float) else v

    return Table(header, [[cell(r, k) for k in header] for r in rows]).markdown()


def build(root: Path, repo_url: str, figure_dir: str = "") -> tuple[str, dict[str, bytes]]:
    """(Markdown of results.md, {file name: PNG bytes}). `root` is the repository; the page links each
    figure as `figure_dir/name` (beside the page when empty)."""
    parts = [
        "# Results\n",
        "Every saved experiment record and benchmark of this repository, rendered from the saved files. "
        "Each record holds every seed that has run; each metric is shown as the mean ± the half-width "
        "of its 95% interval over seeds, and each verdict is computed from the paired difference of "
        "two arms on the same seeds (`labnorm.verdict`): one seed can only be *inconclusive*. Runs on "
        "the offline JPEG copy of CIFAR-10 are labelled \"CIFAR-10 (JPEG q75 copy)\".\n",
    ]
    gpu_records = [n for n in experiments.experiments() if experiments.load(n, "gpu") is not None]
    gpu_benchmarks = sorted(results.benchmarks_dir().glob("*__cuda.json"))
    if not gpu_records and not gpu_benchmarks:
        parts.append("**No GPU run yet.** No GPU has been available to this project so far: no record below is at "
                     "`gpu` scale and no benchmark ran on CUDA — everything here ran on a CPU, at the reduced `cpu` "
                     "scale. Every gpu configuration is dry-run in the test suite, and `scripts/gpu_runs.sh` holds "
                     "the runs to make when a GPU is at hand.\n")
    images: dict[str, bytes] = {}
    for name, exp in sorted(experiments.experiments().items()):
        for scale in reversed(SCALES):
            rec = experiments.load(name, scale)
            if rec is None:
                continue
            parts.append(f"## {name} · {scale}\n")
            parts.append(f"{exp.description}\n")
            parts.append(_provenance(rec, repo_url))
            report = exp.report(rec)
            names = [f"{name}__{scale}__{i}.png" for i in range(len(report.figures))]
            for fig, png in zip(report.figures, names):
                images[png] = fig.png()
            parts.append(report.markdown([f"{figure_dir}/{n}" if figure_dir else n for n in names]))
            cfg = ", ".join(f"`{k}`={v}" for k, v in rec.get("config", {}).items())
            parts.append(f"Config: {cfg}\n")
    bench = sorted(results.benchmarks_dir().glob("*.json"))
    if bench:
        parts.append("## Benchmarks\n")
        for path in bench:
            rec = json.loads(path.read_text())
            parts.append(f"### {path.stem}\n\n{rec.get('what', '')}\n")
            parts.append(_provenance(rec, repo_url))
            parts.append(_benchmark(rec))
    return "\n".join(parts), images
