"""Build the site's guide "Which normalization should I use?" from the registry, the saved records and the claims.

Called by `scripts/render_pages.py` (`make pages`): returns the page's Markdown, which it commits as
`docs/choose.md` (the site builds without torch), like the Results and Claims pages. Every fact on the
page is computed: what each norm of the registry computes and needs is probed from its layer
(`labnorm.choose.anatomy`); what it costs comes from the per-layer benchmark; what our runs show comes
from the saved records (`labnorm.experiments.reference`: the largest scale there is), with their
intervals over seeds and the project's own rule for whether a record's networks are trained
(`labnorm.choose.standing`); each branch of the decision flow quotes its source and the verdict the
Claims page gives it (`labnorm.claims`). A record saved later — a grand comparison on trained networks —
changes the page when it is rendered again, with no change here. `python scripts/choose_page.py` prints it.
"""

from __future__ import annotations

from pathlib import Path

from labnorm import choose, claims, experiments
from labnorm.experiments import Table
from labnorm.experiments.claims import TRAINED_LEVEL, gn_name
from labnorm.stats import METHOD, Summary, paired_difference, summarize

SITE = "https://labnorm.github.io/labnorm"
# The records the page reads, by role
ZOO, FAST, LM = "norm_zoo_cifar", "fast_cifar", "transformer_norms"
# The three notebooks that answer "is BN bad at batch 2?", with the experiment each answers it from
BATCH_TWO = (("01_batch_and_group_norm", "bn_gn_batch_size"), ("09_normalization_zoo", "norm_zoo_small_cnn"),
             ("10_which_normalization", ZOO))
# What each registered norm is, in a few words, and the notebook that builds it (a name missing here shows
# its layer's class alone)
ABOUT = {
    "bn": ("Batch Norm", "01_batch_and_group_norm"),
    "torch-bn": ("torch's own `nn.BatchNorm2d`, for reference runs", "01_batch_and_group_norm"),
    "gn": ("Group Norm (32 groups by default)", "01_batch_and_group_norm"),
    "torch-gn": ("torch's own `nn.GroupNorm`, for reference runs", "01_batch_and_group_norm"),
    "wn": ("weight normalization: each filter's length and direction", "02_weight_norm"),
    "wn+mobn": ("weight normalization + mean-only BN", "02_weight_norm"),
    "ws+bn": ("Weight Standardization + BN", "03_weight_standardization"),
    "ws+gn": ("Weight Standardization + GN", "03_weight_standardization"),
    "bcn": ("Batch-Channel Norm: BN, then a channel norm", "03_weight_standardization"),
    "ws+bcn": ("Weight Standardization + Batch-Channel Norm", "03_weight_standardization"),
    "sn": ("Switchable Norm: a learned mix of IN, LN and BN", "05_switchable_norm"),
    "sn-ba": ("Switchable Norm, eval statistics from a batch average", "05_switchable_norm"),
    "ln": ("Layer Norm over (C, H, W): GN with one group", "09_normalization_zoo"),
    "ln2d": ("ConvNeXt's LayerNorm: over C at each position", "09_normalization_zoo"),
    "rms": ("RMSNorm over C at each position: no mean subtracted", "09_normalization_zoo"),
    "in": ("Instance Norm", "09_normalization_zoo"),
    "gbn": ("Ghost BN: BN over virtual batches", "09_normalization_zoo"),
    "brn": ("Batch Renorm: BN corrected toward its running statistics", "09_normalization_zoo"),
    "frn": ("Filter Response Norm + TLU", "09_normalization_zoo"),
    "evob0": ("EvoNorm-B0: batch and instance variance", "09_normalization_zoo"),
    "evos0": ("EvoNorm-S0: group variance, SiLU-like numerator", "09_normalization_zoo"),
    "dyt": ("Dynamic Tanh: γ tanh(αx) + β, no statistics", "09_normalization_zoo"),
    "grn": ("ConvNeXt V2's Global Response Norm", "09_normalization_zoo"),
    "none": ("no normalization", "10_which_normalization"),
}
# The transformer benchmark's layer for each norm of a transformer_norms arm ('pre-rms' -> 'rms')
LM_LAYERS = {"ln": "LayerNorm", "rms": "RMSNorm", "rms-zero-centred": "RMSNorm(zero_centered)", "dyt": "DynamicTanh",
             "derf": "DynamicErf", "ln+qk": "QKNorm(ln)"}


def _nb(notebook: str, text: str | None = None) -> str:
    return f"[{text or notebook[:2]}](notebooks/{notebook}.ipynb)"


def _pct(s: Summary) -> str:
    """An accuracy 'mean ± half-width' in % (one seed: its value)."""
    if s.mean is None:
        return "—"
    half = "" if s.low is None else f" ± {(s.high - s.low) / 2 * 100:.1f}"
    return f"{s.mean * 100:.1f}{half}%"


def _diff(d: Summary | None, scale: float = 100.0, unit: str = "", digits: int = 1) -> str:
    """A paired difference '+1.2 [−0.3, +2.7]' (× scale), or '—'."""
    if d is None or d.mean is None:
        return "—"
    text = f"{d.mean * scale:+.{digits}f}{unit}"
    return text + ("" if d.low is None else f" [{d.low * scale:+.{digits}f}, {d.high * scale:+.{digits}f}]")


def _ratio(s: Summary) -> str:
    if s.mean is None:
        return "—"
    return f"{s.mean:.2f}" + ("" if s.low is None else f" ± {(s.high - s.low) / 2:.2f}")


def _record_file(record: dict) -> str:
    return f"results/{record['experiment']}__{record['scale']}.json"


def _where(record: dict) -> str:
    p = record.get("provenance", {})
    return f"`{_record_file(record)}` ({p.get('device', 'unknown device')}, {(p.get('date') or '')[:10]})"


def _column(record: dict, b: int) -> str:
    return choose.column_label(record, b)


# ---------------------------------------------------------------------------------------------
# Evidence: the verdicts of the Claims page, looked up by experiment and text

class Evidence:
    """Every assessment of the Claims page (the five sources' and the notebooks' own questions), found by its
    experiment (or source) and words of its quote, part or test."""

    def __init__(self) -> None:
        self.judged = claims.assess_all()
        self.all = [a for j in self.judged for a in j.tests]
        self.all += [a for _, tests in claims.own_claims() for a in tests]

    @staticmethod
    def _has(a, words: tuple[str, ...]) -> bool:
        text = " ".join((a.claim.quote, a.claim.part, a.claim.tests)).lower()
        return all(w.lower() in text for w in words)

    def find(self, experiment: str, *words: str):
        """The assessment of `experiment`'s claim whose quote, part or test contains every one of `words`."""
        for a in self.all:
            if a.experiment == experiment and self._has(a, words):
                return a
        raise LookupError(f"no claim of {experiment} mentions {words}")

    def source(self, source: str, *words: str):
        """One claim of a source (`labnorm.claims.SOURCES`), every test of it, the deciding one first."""
        for j in self.judged:
            if j.source == source and j.tests and all(w.lower() in j.quote.lower() for w in words):
                return j.tests
        raise LookupError(f"no tested claim of {source} mentions {words}")

    @staticmethod
    def line(a, quote: bool = True) -> str:
        """'“quote” (where) — our `experiment`: figure → **word** (reason)'."""
        said = f"“{a.claim.quote}” ({a.claim.where}) — " if quote else ""
        reason = f" ({a.reason})" if a.reason and a.word != "supported" else ""
        return f"{said}our `{a.experiment}`: {a.figure} → **{a.word}**{reason}"

    @classmethod
    def tests(cls, tests) -> str:
        """A source's claim with the test that decides it, and the other tests' words."""
        more = "; ".join(f"`{a.experiment}` **{a.word}**" for a in tests[1:])
        return cls.line(tests[0]) + (f". Also tested by: {more}." if more else ".")


# ---------------------------------------------------------------------------------------------
# The page's parts

def _standing_line(record: dict) -> str:
    limit = choose.standing(record)
    if limit is None:
        metric, s = choose.baseline_summary(record)
        level = f"reached {_pct(s)}" if s.mean is not None and s.mean <= 1 else f"ended at {s.format(3)}"
        return f"**Trained** by the project's rule: its baseline (`{metric}`) {level}, so its intervals can decide."
    return (f"**Early in training: these rows cannot decide.** By the project's rule (`labnorm.experiments.claims`, "
            f"rule 4) {limit}. The differences below describe the first minutes of training, so no ▲/▼ is marked; "
            "when a record of this experiment on trained networks is saved, this page is rendered from it.")


def flow(ev: Evidence, zoo: dict | None) -> list[str]:
    """The decision flow: each branch with its source's words and our runs' verdicts."""
    out = ["## The short answer: a decision flow { #flow }\n",
           "Each branch gives the source that recommends it and what our runs say, with the verdict of the "
           "[Claims](claims.md) page. A branch labelled *inconclusive at this scale* is advice our runs have not "
           "(yet) confirmed: it rests on the source alone.\n"]
    # 1. Transformers
    rms, qk = ev.find(LM, "RMSNorm achieves comparable"), ev.find(LM, "QK-norm keeps attention logits")
    dyt, warm = ev.find(LM, "Transformers without normalization"), ev.find(LM, "Post-LN needs warm-up")
    out.append("1. **A Transformer** (attention over tokens)? → **LayerNorm or RMSNorm before each sublayer "
               "(Pre-LN)**, and **QK-norm** where attention logits grow (large learning rates, long runs).\n"
               f"    - RMSNorm for LayerNorm: {ev.line(rms)}.\n"
               f"    - QK-norm: {ev.line(qk)}.\n"
               f"    - Not DyT in LayerNorm's place without tuning its α: {ev.line(dyt)}.\n"
               f"    - Post-LN needs warm-up: {ev.line(warm)}.\n"
               f"    - Notebook {_nb('12_normalization_in_transformers', '12')}; the [table below](#transformers).\n")
    # 2. GANs
    begin = ev.find("gan_weight_norm_cifar", "BN accelerates the training in the beginning")
    superior = ev.find("gan_weight_norm_cifar", "generally superior to BN for GANs")
    out.append("2. **A GAN?** → our runs do not decide between BN and weight normalization yet: BN speeds up the "
               "beginning, and the paper's case for WN is about long runs we have not made.\n"
               f"    - {ev.line(begin)}.\n"
               f"    - {ev.line(superior)}.\n"
               f"    - Notebook {_nb('06_gan_weight_norm', '06')}.\n")
    # 3. Conv nets, by the images each worker normalizes over
    big = ev.find(FAST, "BN ahead")
    big_zoo = ev.find(ZOO, "BN beats GN at the")
    small = ev.source("ws-post", "prefer to use GN")
    small_zoo = [a for a in small if a.experiment == ZOO]
    ws_zoo = ev.find(ZOO, "ws+gn beats BN")
    stable = ev.find("bn_gn_batch_size", "stable in a wide range")
    out.append("3. **A conv net**: how many images does each device normalize over (its *per-worker batch*, "
               f"[glossary]({SITE}/glossary/#per-worker-batch))?\n"
               "    - **32 or so per device** (the GN paper's setting for \"typical\" batches) → **BN** (`bn`; torch's "
               "`nn.BatchNorm2d` in production).\n"
               f"        - {ev.line(big)}.\n"
               f"        - The grand comparison: {ev.line(big_zoo, quote=False)}.\n"
               "    - **1 or 2 per device** → **GN** (`gn`) or **WS + GN** (`ws+gn`), whose statistics never see the "
               "batch; or keep BN and pool its statistics over the workers (SyncBN: `labnorm.distributed."
               "SyncBatchNorm2d`, proven equal to BN over the whole batch in `tests/test_distributed.py`).\n"
               f"        - {ev.tests(small)}\n"
               + "".join(f"        - The grand comparison: {ev.line(a, quote=False)}.\n" for a in small_zoo) +
               f"        - WS + GN: {ev.line(ws_zoo, quote=False)}.\n"
               f"        - {ev.line(stable)}.\n"
               "    - **In between** (4 to 16 per device): no run of ours and no quoted source draws the line; compare "
               "BN with GN at your own per-worker batch (`labnorm.set_norm_batch` simulates it on one device).\n"
               "    - **Evaluation on batches unlike training's** (one image at a time, a shifted distribution) → a "
               "norm without a running average (GN, LN, IN, RMSNorm, FRN, EvoNorm-S0: the [table](#norms)) computes "
               "the same thing in training and in evaluation.\n")
    # 4. No norm at all
    none = _cell_text(zoo, "none")
    out.append("4. **No norm at all?** → only with an initialization that preserves the signal (Fixup, or the "
               f"data-dependent init of notebook {_nb('02_weight_norm', '02')}) or a learning rate of its own. With "
               "default initialization the signal shrinks layer by layer: notebook "
               f"{_nb('10_which_normalization', '10')} opens with it."
               + (f" In the grand comparison, {none}." if none else "") + "\n")
    # 5. Cost
    costs = _cost_summary()
    if costs:
        out.append(f"5. **Cost.** {costs}\n")
    return out


def _cell_text(zoo: dict | None, norm: str) -> str:
    if zoo is None:
        return ""
    g, cols = choose.grid(zoo), choose.columns(zoo)
    cell = g.get(norm, {}).get(cols[0])
    base = g.get(zoo["config"].get("baseline", "bn"), {}).get(cols[0])
    if cell is None or base is None:
        return ""
    return (f"`{norm}` reached {_pct(cell.acc)} at {_column(zoo, cols[0])} where BN reached {_pct(base.acc)} "
            f"({'trained' if choose.trained(zoo) else 'early in training'})")


def _cost_summary() -> str:
    found = choose.benchmark("zoo")
    if found is None:
        return ""
    path, bench = found
    rows = [r for r in bench["rows"] if "labnorm_over_bn" in r]
    top = max(r.get("batch", 0) for r in rows)
    rows = [r for r in rows if r.get("batch", 0) == top]
    eager = sorted(r["labnorm_over_bn"] for r in rows)
    comp = sorted(r["compiled_over_bn"] for r in rows if r.get("compiled_over_bn") is not None)
    device = bench.get("provenance", {}).get("device", "")
    text = (f"A norm written in Python pays for every operation it launches: at batch {top} on {device}, labnorm's "
            f"eager layers take {eager[0]:.2f}–{eager[-1]:.2f} × the time of torch's `BatchNorm2d` (train forward + "
            f"backward), and under `torch.compile` {comp[0]:.2f}–{comp[-1]:.2f} ×")
    return text + f" (`benchmarks/results/{path.name}`; the [table](#norms) per norm)."


def norms_table() -> list[str]:
    found = choose.benchmark("zoo")
    bench = found[1] if found else None
    rows = []
    for a in choose.anatomies():
        about, notebook = ABOUT.get(a.name, (f"`{a.layer}`", ""))
        cost = choose.layer_costs(bench, a.layer) if bench else None
        if a.layer == "BatchNorm2d" and not a.in_conv:
            cost_text = "1 (the reference)" if a.name == "torch-bn" else "— (the reference is `torch-bn`)"
        else:
            cost_text = "—" if cost is None else f"{cost['eager']:.2f} / {cost['compiled']:.2f}"
        needs = "no" if not a.needs_batch else f"**yes**: {a.batch}"
        rows.append([f"`{a.name}`", about + (f" ({_nb(notebook)})" if notebook else ""), a.over_text, needs,
                     a.running or "—", "**fused**" if a.fuses_activation else "—", a.in_conv or "—", cost_text])
    where = ""
    if found:
        p = found[1].get("provenance", {})
        where = (f" Cost: `benchmarks/results/{found[0].name}` ({p.get('device', '')}, {(p.get('date') or '')[:10]}), "
                 "train forward + backward of the layer alone on a [128, 64, 32, 32] map (the largest batch it times), "
                 "÷ torch's `nn.BatchNorm2d`, labnorm eager / under `torch.compile`; — where it times no such layer.")
    note = ("*Statistics shared across*: which values move a given value's statistics, probed on the layer itself "
            "(`labnorm.choose.anatomy`): other samples (N: the norm needs a batch), all channels (C) or its group "
            "(C/G), other positions (H·W). *Needs a batch*: per worker (`norm_batch`) means that under data "
            f"parallelism each worker normalizes over its own images ([glossary]({SITE}/glossary/#per-worker-batch)), "
            "as `labnorm.set_norm_batch` simulates; such a norm also keeps a *running average* for evaluation "
            f"([glossary]({SITE}/glossary/#running-statistics)). *Activation*: fused norms replace the norm + ReLU "
            "pair (the model adds no ReLU). *In the conv*: the technique normalizes the weights." + where)
    return ["## What each norm computes, needs and costs { #norms }\n",
            "Every name of the `norm=` registry (`labnorm.norms`), probed from its layer.\n",
            Table(["norm=", "what it is", "statistics shared across", "needs a batch?", "for evaluation",
                   "activation", "in the conv", "layer cost ÷ BN (eager / compiled)"], rows, note=note).markdown()]


def conv_tables(fast: dict | None, zoo: dict | None) -> list[str]:
    out = ["## What our runs show: conv nets { #conv }\n",
           f"Test accuracy on CIFAR-10 (mean ± half-width of the {METHOD}), and each norm's *paired* difference from "
           "BN over the same seeds in points, with its 95% interval: the norm's effect, seed by seed, not the spread "
           "of two arms.\n"]
    if fast is not None:
        base = fast["config"].get("baseline", "bn")
        rows = []
        for norm in fast["config"]["norms"]:
            acc = experiments.values(fast, f"test_acc_tta/{norm}")
            d = None if norm == base else paired_difference(acc, experiments.values(fast, f"test_acc_tta/{base}"))
            lr = experiments.values(fast, f"lr/{norm}")
            rows.append([f"`{norm}`", _pct(summarize(acc)), "baseline" if d is None else _diff(d),
                         _ratio(summarize(lr))])
        c = fast["config"]
        out += [f"### Trained to the end: `{FAST}` ({_nb('11_training_fast_on_a_cpu', 'notebook 11')})\n",
                f"The whitened fast net at width {c.get('width')}, {c.get('epochs')} epochs of "
                f"{c.get('train_images', 0):,} images, batch {c.get('batch_size', 0):,} (no per-worker split), a "
                f"recipe tuned for BN; each norm at the learning rate its range test gives. {_where(fast)}.\n",
                _standing_line(fast) + "\n",
                Table(["norm", "test acc. (TTA)", "− BN (points)", "peak lr"], rows).markdown()]
    if zoo is not None:
        g, cols, base = choose.grid(zoo), choose.columns(zoo), zoo["config"].get("baseline", "bn")
        decided = choose.trained(zoo)
        meaning = choose.batch_meaning(zoo)
        rows = []
        for norm, cells in g.items():
            row = [f"`{norm}`"]
            for b in cols:
                cell = cells.get(b)
                if cell is None:
                    row.append("—")
                elif cell.diff is None:
                    row.append(f"{_pct(cell.acc)} (baseline)")
                else:
                    row.append(f"{_pct(cell.acc)}; {_diff(cell.diff)}" + (f" {cell.mark}" if decided and cell.mark else ""))
            ratio = cells.get(cols[0])
            row.append(_ratio(ratio.step_ratio) if ratio is not None else "—")
            rows.append(row)
        c = zoo["config"]
        budget = f"{c.get('epochs')} epoch(s) of {c.get('train_images', 0):,} images"
        if "max_steps" in c:
            budget += f", at most {c['max_steps']:,} steps"
        note = (f"Each cell: test accuracy; its paired difference from {base} in points [95% interval]"
                + (", ▲/▼ where the interval lies wholly above/below 0" if decided else "") +
                f". Columns: {meaning['text'].replace('{b}', 'b')}. Step time ÷ {base}: a whole training step, "
                f"timed alternately with {base}'s in the same run, at {_column(zoo, cols[0])}.")
        out += [f"### The grand comparison: `{ZOO}` ({_nb('10_which_normalization', 'notebook 10')})\n",
                f"Every norm in one harness: {c.get('model')} at width {c.get('width')}, {budget}, "
                f"{c.get('lr_rule', '')}. {_where(zoo)}.\n",
                _standing_line(zoo) + "\n",
                Table(["norm", *(_column(zoo, b) for b in cols), f"step time ÷ {base}"], rows, note=note).markdown()]
    return out


def transformer_table(lm: dict | None) -> list[str]:
    if lm is None:
        return []
    c = lm["config"]
    base = c.get("baseline", "pre-ln")
    found = choose.benchmark("transformer")
    bench_rows = {r["layer"]: r for r in found[1]["rows"]} if found else {}
    rows = []
    for arm in c["arms"]:
        loss = experiments.values(lm, f"val_loss/{arm}")
        d = None if arm == base else paired_difference(loss, experiments.values(lm, f"val_loss/{base}"))
        logit = summarize(experiments.values(lm, f"max_attn_logit/{arm}"))
        norm = arm.split("@")[0].split("-", 1)[1] if "-" in arm else arm
        layer = bench_rows.get(LM_LAYERS.get(norm, ""))
        cost = "—" if layer is None else f"{layer['labnorm_over_ln']:.2f} / {layer['labnorm_compiled_over_ln']:.2f}"
        rows.append([f"`{arm}`", summarize(loss).format(3), "baseline" if d is None else _diff(d, 1, "", 3),
                     logit.format(1), cost])
    where = ""
    if found:
        p = found[1].get("provenance", {})
        where = (f" Layer cost: `benchmarks/results/{found[0].name}` ({p.get('device', '')}), train forward + backward "
                 "of the layer at the GPT's shapes ÷ torch's `nn.LayerNorm`, labnorm eager / compiled.")
    note = (f"Validation loss in nats per character (lower is better); − {base}: the paired difference over the same "
            "seeds [95% interval]. Largest attention logit: at the end of training, the quantity QK-norm bounds "
            f"([glossary]({SITE}/glossary/#qk-norm)); pre-/post-/peri-: where the norm sits around each sublayer "
            f"([glossary]({SITE}/glossary/#pre-ln)); @no-warmup: without learning-rate warm-up." + where)
    return ["## What our runs show: Transformers { #transformers }\n",
            f"A {c.get('num_layers')}-layer, {c.get('dim')}-wide character-level GPT on tiny Shakespeare, "
            f"{c.get('iterations'):,} steps ({_nb('12_normalization_in_transformers', 'notebook 12')}). {_where(lm)}.\n",
            _standing_line(lm) + "\n",
            Table(["arm", "validation loss", f"− {base}", "largest attention logit", "layer cost ÷ LN (eager / compiled)"],
                  rows, note=note).markdown()]


def batch_two() -> list[str]:
    """The answers of notebooks 01, 09 and 10 to "is BN bad at batch 2?", each from its record, and why they differ."""
    out = ["## Is BN bad at batch 2? Notebooks 01, 09 and 10 reconciled { #batch-2 }\n",
           "Three notebooks answer this question and their answers differ. They differ because each one measures "
           "something else, not because one of them is wrong:\n"]
    early, per_worker_trained = [], None
    for notebook, name in BATCH_TWO:
        record = experiments.reference(name)
        if record is None:
            out.append(f"- {_nb(notebook)}: no saved record of `{name}` yet.")
            continue
        c, meaning = record["config"], choose.batch_meaning(record)
        small, large = min(c["batch_sizes"]), max(c["batch_sizes"])
        gn = gn_name("{gn}", record)
        bn_s, bn_l = experiments.values(record, f"test_acc/bn/b{small}"), experiments.values(record, f"test_acc/bn/b{large}")
        gn_s = experiments.values(record, f"test_acc/{gn}/b{small}")
        drop, gap = paired_difference(bn_s, bn_l), paired_difference(gn_s, bn_s)
        if meaning["per_worker"]:
            how = (f"**per-worker batch {small}**: BN's statistics come from {small} images, the gradient from all "
                   f"{meaning['optimizer_batch']:,}, as on one of {meaning['optimizer_batch'] // small:,} data-parallel "
                   "workers; every column trains the same steps")
        else:
            steps = {b: min(c.get("epochs", 1) * (c.get("train_images", 0) // b), c.get("max_steps") or 10 ** 12)
                     for b in (small, large)}
            how = (f"**true batch-{small} SGD**: statistics *and* gradient from the same {small} images, the learning "
                   f"rate scaled down with the batch, {steps[small]:,} steps against {steps[large]:,} at batch {large}")
            if c.get("max_steps"):
                how += f" (a cap of {c['max_steps']:,} steps leaves batch {small} {steps[small] * small:,} images)"
        limit = choose.standing(record)
        _, base = choose.baseline_summary(record)
        state = "early in training" if limit else "trained"
        (early if limit else []).append(notebook[:2])
        if meaning["per_worker"] and not limit:
            per_worker_trained = (notebook, gap)
        at_s, at_l = _column(record, small), _column(record, large)
        out.append(f"- {_nb(notebook, 'Notebook ' + notebook[:2])} (`{name}`: {c.get('model')}, BN reached "
                   f"{_pct(base)} at {at_l}, **{state}**) trains at {how}. "
                   f"BN at {at_s} − BN at {at_l}: {_diff(drop)} points — {_say_drop(drop)}; "
                   f"{gn} − BN at {at_s}: {_diff(gap)} points — {_say_gap(gap)}.")
    out.append("")
    out.append("**What each measured.** True small-batch SGD (as in notebooks 01 and 09) changes two things at once: "
               "BN's statistics come from two images, *and* the optimization changes — many more, noisier steps at a "
               "learning rate scaled down with the batch. A gap there mixes the norm with the optimizer, and how the "
               "budget is set (the same images at every batch, or a cap on the steps) moves it. A per-worker batch "
               "changes only the statistics: each worker normalizes over its own images while the gradient is "
               "averaged over all of them — the setting of the Group Norm paper (\"images per GPU\") and of any "
               f"data-parallel job; notebook {_nb('11_training_fast_on_a_cpu', '11')} shows that labnorm's simulation "
               "of it equals real DDP. And a ranking early in training is a ranking of how fast each norm starts, "
               "not of where it ends: the project's rule marks every comparison on a CIFAR-10 network under "
               f"{TRAINED_LEVEL:.0%} test accuracy *inconclusive at this scale*.\n")
    if per_worker_trained is not None:
        notebook, gap = per_worker_trained
        others = [n for n in early if n != notebook[:2]]
        out.append(f"**The answer that decides** is notebook {notebook[:2]}'s: trained networks at a per-worker batch, "
                   f"{_say_gap(gap)} ({_diff(gap)} points)."
                   + (f" Notebook{'s' if len(others) > 1 else ''} {', '.join(others)} describe{'' if len(others) > 1 else 's'} "
                      "early training under true small-batch SGD." if others else "") + "\n")
    else:
        out.append(f"**So, for now:** none of these records can say whether BN is worse than GN at batch 2 on trained "
                   f"networks (early in training: notebook{'s' if len(early) > 1 else ''} {', '.join(early)}). What "
                   "they agree on is the mechanism — BN's batch statistics from two images are noisy, and its running "
                   "averages drift from them — which the GN paper's trained ImageNet runs turn into a loss of accuracy "
                   "(the [decision flow](#flow) quotes it). When the grand comparison is saved on trained networks at a "
                   "per-worker batch, this paragraph is rendered from it.\n")
    return out


def _say_drop(d: Summary) -> str:
    if d.low is not None and d.high < 0:
        return "BN loses accuracy as its batch shrinks"
    if d.low is not None and d.low > 0:
        return "BN gains accuracy as its batch shrinks"
    return "BN's change with the batch is not told from noise"


def _say_gap(d: Summary) -> str:
    if d.low is not None and d.low > 0:
        return "GN ends above BN"
    if d.low is not None and d.high < 0:
        return "BN ends above GN"
    return "GN and BN are not told apart"


def _sources(records: list[dict]) -> list[str]:
    rows = []
    for r in records:
        p = r.get("provenance", {})
        commit = (p.get("commits") or [p.get("commit") or "unknown"])[0]
        rows.append([f"`{_record_file(r)}`", r["experiment"], p.get("device", ""), (p.get("date") or "")[:10],
                     f"`{commit[:10]}`", ", ".join(str(s) for s in r.get("seeds", []))])
    for name in ("zoo", "transformer"):
        found = choose.benchmark(name)
        if found:
            p = found[1].get("provenance", {})
            rows.append([f"`benchmarks/results/{found[0].name}`", f"benchmark `{name}`", p.get("device", ""),
                         (p.get("date") or "")[:10], f"`{str(p.get('commit') or 'unknown')[:10]}`", "—"])
    return ["## Where the numbers come from { #records }\n",
            Table(["file", "what", "device", "date", "commit", "seeds"], rows).markdown()]


def build(root: Path | None = None, repo_url: str = "") -> str:
    """Markdown of choose.md (`root` and `repo_url` are accepted for symmetry with the other pages)."""
    zoo, fast, lm = (experiments.reference(n) for n in (ZOO, FAST, LM))
    ev = Evidence()
    parts = [
        "---\nhide:\n  - toc\n---\n",
        "# Which normalization should I use?\n",
        '<div class="claims-page"></div>\n',
        "A guide to choosing, computed like the [Claims](claims.md) and [Results](results.md) pages: what each norm "
        "computes and needs is probed from its layer, what it costs comes from the benchmarks, and what our runs show "
        "comes from the saved records, so no number here is typed by hand. Notebook "
        f"{_nb('10_which_normalization', '10')} puts every norm in one harness; this page is its summary.\n",
        f"**How to read the numbers.** An accuracy is the mean over seeds ± the half-width of its {METHOD}. Two norms "
        "are compared by their *paired* difference — seed by seed, on the same initialization and data order — with "
        "its 95% interval. A record whose baseline is under "
        f"{TRAINED_LEVEL:.0%} test accuracy on CIFAR-10 holds networks early in training: by the project's rule "
        "(`labnorm.experiments.claims`) none of its comparisons decides, whatever its interval says, and the page "
        "says so beside it.\n",
        "On this page: [the decision flow](#flow) · [is BN bad at batch 2?](#batch-2) · [each norm](#norms) · "
        "[conv-net runs](#conv) · [Transformer runs](#transformers) · [the records](#records)\n",
    ]
    parts += flow(ev, zoo)
    parts += batch_two()
    parts += norms_table()
    parts += conv_tables(fast, zoo)
    parts += transformer_table(lm)
    parts += _sources([r for r in (fast, zoo, lm) if r is not None]
                      + [r for r in (experiments.reference(n) for _, n in BATCH_TWO[:2]) if r is not None])
    return "\n".join(parts)


if __name__ == "__main__":
    print(build())
