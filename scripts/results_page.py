"""Build the site's Results page from `results/*.json` and `benchmarks/results/*.json`.

Called by `scripts/mkdocs_hooks.py` at build time: returns the page's Markdown and its PNG
figures (drawn with matplotlib), nothing is written to the repository. Every table and
figure comes with the provenance of the run it shows (device, scale, dataset variant,
commit, date, wall time). Experiments without a dedicated table get their config only.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from statistics import median
from typing import Callable


def _fig_png(draw: Callable) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _provenance(rec: dict, repo_url: str) -> str:
    p = rec["provenance"]
    commit = p.get("commit") or "unknown"
    commit_md = f"[`{commit[:10]}`]({repo_url}/commit/{commit})" if commit != "unknown" else "unknown"
    if p.get("commit_dirty"):
        commit_md += " (uncommitted changes)"
    return _table(
        ["device", "scale", "dataset", "commit", "date", "wall time", "torch", "seed"],
        [[p.get("device"), p.get("scale"), p.get("dataset") or "—", commit_md, (p.get("date") or "")[:10],
          f"{p.get('wall_time_s', 0) / 60:.1f} min", p.get("torch"), p.get("seed")]],
    )


# --------------------------------------------------------------------------- per experiment


def _bn_gn(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["norm"], r["batch_size"], f"{r['lr']:.4g}",
             "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}",
             "" if r["final_test_loss"] is None else f"{r['final_test_loss']:.3f}"] for r in runs]

    def draw(ax):
        for norm, marker in (("bn", "o"), ("gn:8", "s")):
            sel = [r for r in runs if r["norm"] == norm]
            ax.plot([r["batch_size"] for r in sel], [r["final_test_acc"] or 0 for r in sel], marker=marker, label=norm)
        ax.set(xscale="log", xlabel="batch size", ylabel="final test accuracy")
        ax.legend()

    return _table(["norm", "batch", "lr", "test acc", "test loss"], rows), draw


def _lr_range(rec: dict) -> tuple[str, Callable | None]:
    curves = rec["metrics"]["curves"]
    rows = []
    for c in curves:
        i = min(range(len(c["loss"])), key=lambda k: c["loss"][k])
        sugg = "—" if c["suggested_lr"] is None else f"{c['suggested_lr']:.3g}"
        rows.append([c["norm"], f"{c['loss'][i]:.3f}", f"{c['lr'][i]:.3g}", sugg, c["stopped_at"]])

    def draw(ax):
        low = min(min(c["loss"]) for c in curves)
        high = max(c["loss"][0] for c in curves)
        for c in curves:
            ax.plot(c["lr"], c["loss"], label=c["norm"])
        ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss",
               ylim=(low - 0.1 * (high - low), high + 0.6 * (high - low)))
        ax.legend()

    return _table(["norm", "lowest loss", "at lr", "steepest descent", "steps"], rows), draw


def _one_cycle(rec: dict) -> tuple[str, Callable | None]:
    epochs = rec["metrics"]["epochs"]
    rows = [[e["epoch"], f"{e['train_loss']:.3f}", f"{e.get('test_acc', float('nan')):.3f}",
             f"{e['images_per_s']:.0f}"] for e in epochs]

    def draw(ax):
        ax.plot([e["epoch"] for e in epochs], [e.get("test_acc") for e in epochs], marker="o")
        ax.set(xlabel="epoch", ylabel="test accuracy")

    return _table(["epoch", "train loss", "test acc", "images/s"], rows), draw


def _weight_norm(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["optimizer"], r["variant"], f"{r['final_test_acc']:.3f}", f"{r['final_test_loss']:.3f}",
             f"{r['epochs'][0].get('test_acc', float('nan')):.3f}"] for r in runs]

    def draw(ax):
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        for k, opt in enumerate(("adam", "sgd")):
            acc = {r["variant"]: r["final_test_acc"] for r in runs if r["optimizer"] == opt}
            ax.bar([i + 0.4 * k for i in range(len(variants))], [acc.get(v, 0) for v in variants], width=0.4, label=opt)
        ax.set_xticks([i + 0.2 for i in range(len(variants))], variants)
        ax.set(ylabel="final test accuracy")
        ax.legend()

    return _table(["optimizer", "variant", "test acc", "test loss", "epoch-1 acc"], rows), draw


def _ws_bcn_vgg(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["norm"], "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}",
             "" if r["final_test_loss"] is None else f"{r['final_test_loss']:.3f}",
             f"{r['dead_channel_fraction']:.1%}"] for r in runs]

    def draw(ax):
        for r in runs:
            ax.plot([s for s, _ in r["loss_curve"]], [v for _, v in r["loss_curve"]], label=r["norm"])
        ax.set(xlabel="step", ylabel="training loss")
        ax.legend()

    return _table(["norm", "test acc", "test loss", "dead ReLU channels"], rows), draw


def _ws_small_batches(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["norm"], r["batch_size"], "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}",
             "" if r["final_test_loss"] is None else f"{r['final_test_loss']:.3f}",
             "none" if r["blow_up_step"] is None else r["blow_up_step"],
             f"{r['seconds'] / len(r['epochs']):.1f}"] for r in runs]

    def draw(ax):
        for c in rec["metrics"]["range_tests"]:
            ax.plot(c["lr"], c["loss"], label=f"{c['norm']}, batch {c['batch_size']}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss (LR range test)")
        ax.legend()

    return _table(["norm", "batch", "test acc", "test loss", "blow-up step", "s/epoch"], rows), draw


def _switch_norm(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["label"], "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}",
             f"{max((e.get('test_acc') or 0) for e in r['epochs']):.3f}"] for r in runs]

    def draw(ax):
        for r in runs:
            ax.plot([e["epoch"] for e in r["epochs"]], [e.get("test_acc") for e in r["epochs"]], marker="o", label=r["label"])
        ax.set(xlabel="epoch", ylabel="test accuracy")
        ax.legend()

    return _table(["run", "final test acc", "best test acc"], rows), draw


def _gan_weight_norm(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = [[r["norm"], f"{r['final_reconstruction_loss']:.4f} ± {r['final_reconstruction_loss_std']:.4f}",
             f"{min(v for _, v in r['eval']):.4f}", f"{r['sample_spread_vs_real']:.2f}",
             "none" if r["diverged_at"] is None else r["diverged_at"]] for r in runs]

    def draw(ax):
        for r in runs:
            ax.plot([it for it, _ in r["eval"]], [v for _, v in r["eval"]], marker="o", label=r["norm"])
        ax.set(xlabel="iteration", ylabel="running reconstruction loss")
        ax.legend()

    return _table(["model", "final reconstruction loss (mean ± std)", "best running loss",
                   "sample spread ÷ real", "diverged at"], rows), draw


def _loss_landscape(rec: dict) -> tuple[str, Callable | None]:
    runs = rec["metrics"]["runs"]
    rows = []
    for r in runs:
        probes = r["probes"]
        rows.append([r["norm"], "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}",
                     f"{median([p['beta'] for p in probes]):.3g}",
                     f"{median([max(p['losses']) - min(p['losses']) for p in probes]):.3g}",
                     f"{median([p['grad_change'][-1] for p in probes]):.3g}",
                     f"{r['filter_weight_norm']:.3g}"])

    def draw(ax):
        for r in runs:
            ax.plot([p["step"] for p in r["probes"]], [p["beta"] for p in r["probes"]], label=r["norm"])
        ax.set(xlabel="training step", ylabel="effective β-smoothness", yscale="log")
        ax.legend(fontsize=7, ncol=2)

    header = ["norm", "final test acc", "median effective β", "median loss spread over step sizes",
              "median gradient change (largest step)", "weight norm (filters) at the end"]
    return _table(header, rows), draw


RENDERERS = {"loss_landscape_norms": _loss_landscape, "gan_weight_norm_cifar": _gan_weight_norm, "switch_norm_cifar": _switch_norm, "bn_gn_batch_size": _bn_gn, "lr_range_test_resnet18": _lr_range, "one_cycle_fast_resnet": _one_cycle,
             "weight_norm_cifar": _weight_norm, "ws_bcn_vgg": _ws_bcn_vgg, "ws_small_batches": _ws_small_batches}


def _benchmark(rec: dict) -> str:
    rows = rec["rows"]
    # Rows may differ in their keys (e.g. one timing column per baseline): take them all, in order.
    header = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "shape"]

    def cell(r, k):
        v = r.get(k, "")
        return f"{v:.3g}" if isinstance(v, float) else v

    return _table(header, [[cell(r, k) for k in header] for r in rows])


def build(root: Path, repo_url: str) -> tuple[str, dict[str, bytes]]:
    """(Markdown of results.md, {file name under results/: PNG bytes})."""
    parts = [
        "# Results\n",
        "Every saved run of this repository, read from `results/*.json` (experiments) and "
        "`benchmarks/results/*.json` (speed) when the site is built. Each table says where its "
        "numbers come from. Runs on the offline JPEG copy of CIFAR-10 are labelled "
        "\"CIFAR-10 (JPEG q75 copy)\".\n",
    ]
    images: dict[str, bytes] = {}
    for path in sorted((root / "results").glob("*.json")):
        rec = json.loads(path.read_text())
        name = rec["experiment"]
        parts.append(f"## {name} · {rec['provenance']['scale']}\n")
        parts.append(f"{rec.get('description', '')}\n")
        parts.append(_provenance(rec, repo_url))
        render = RENDERERS.get(name)
        if render:
            table, draw = render(rec)
            parts.append(table)
            if draw is not None:
                png = f"{path.stem}.png"
                images[png] = _fig_png(draw)
                parts.append(f"![{name} at {rec['provenance']['scale']} scale]({png})\n")
        cfg = ", ".join(f"`{k}`={v}" for k, v in rec.get("config", {}).items())
        parts.append(f"Config: {cfg}\n")
    bench = sorted((root / "benchmarks" / "results").glob("*.json"))
    if bench:
        parts.append("## Benchmarks\n")
        for path in bench:
            rec = json.loads(path.read_text())
            parts.append(f"### {path.stem}\n\n{rec.get('what', '')}\n")
            parts.append(_provenance(rec, repo_url))
            parts.append(_benchmark(rec))
    return "\n".join(parts), images
