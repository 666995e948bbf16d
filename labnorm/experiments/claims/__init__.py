r"""Claims an experiment tests, and the rules that decide whether its run can show them.

A **claim** is a short quote from a source, where the source says it, what we measure to test it,
and the comparison that judges it. Each experiment keeps the claims it tests beside it, in
`labnorm/experiments/claims/<experiment>.py` as a list `CLAIMS`; the experiment's `report()`
prints them with their verdicts (`verdicts(record)`), and the site's Claims page gathers the
claims of every experiment (`labnorm.claims`). One vocabulary serves both:

| word | when |
|---|---|
| **supported** / **contradicted** | the paired 95% interval over seeds lies on one side of the claim's boundary (`labnorm.stats.verdict`), and no rule below applies |
| **inconclusive at this scale** | the interval straddles the boundary, or one seed, or a rule says the run is too small to show the claim (the reason says which) |
| **not testable here** | an arm the comparison uses never learned, or both arms sit at a bound their measure cannot pass |
| **not run** | no saved record, or the record lacks the run (the reason says which) |

**The rules**, applied in this order to every verdict (each a function with its test in
`tests/test_claims.py`):

1. *An arm that never learned.* An `Arm` may carry a `Chance` check: the mean over seeds of a
   measure of learning (final test accuracy, the lowest loss of a range test, a GAN's running
   reconstruction loss relative to its start) lies within a stated margin of what an untrained
   network gives (10% accuracy and $\ln 10 \approx 2.303$ for CIFAR-10's ten classes). Then every
   comparison that uses the arm is **not testable here**.
2. *A measure at a bound.* A comparison may name a `Floor`: when every seed of both arms sits at
   it (no dead channel in either arm, no blow-up in either, both range tests run to their last
   steps), the measure could not move, and the claim is **not testable here**.
3. *One seed* has no interval: **inconclusive at this scale**.
4. *A trained baseline.* A classification claim names its run's baseline arm (`Trained`): below
   `TRAINED_LEVEL` (85% test accuracy on CIFAR-10, unless the claim's setting states another) the
   networks are early in training, and the word is **inconclusive at this scale** whatever the
   interval says, with the baseline's level in the reason. A claim that needs no trained network
   (a range test near initialization, wall time, a claim about the first epoch) says why in
   `untrained`.
5. *A phase of training not reached.* A claim about a later point of training than the run
   reaches (`Phase`: an iteration, an epoch) is **inconclusive at this scale**.

Rules 4 and 5 leave the words in `Claim.keeps` standing: a claim of an absolute level (87% after
25 epochs) is supported by a smaller run that reaches it, but never contradicted by one that
falls short.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...stats import Summary, summarize, verdict

__all__ = ["WORDS", "TRAINED_LEVEL", "DATASET", "Claim", "Arm", "Chance", "Floor", "Trained", "Phase", "Outcome",
           "Assessment", "MissingMetric", "metric", "derived", "gn_name", "gn_note", "accuracy_arm", "chance_accuracy",
           "chance_loss", "compare", "against", "relative", "both", "spread_ratio", "rank_flip", "assess", "verdicts",
           "of", "run_text", "config_value"]

# The five words a claim's verdict can be, on the Claims page and in every report.
WORDS = ("supported", "contradicted", "inconclusive at this scale", "not testable here", "not run")
# The test accuracy a CIFAR-10 baseline must reach before a classification verdict is decided.
TRAINED_LEVEL = 0.85
# An untrained CIFAR-10 network: 10% accuracy and a cross-entropy of ln 10; the margins that count as "at chance".
CHANCE_ACC, CHANCE_ACC_MARGIN = 0.10, 0.02
CHANCE_LOSS, CHANCE_LOSS_MARGIN = math.log(10), 0.05
DATASET = "CIFAR-10 (JPEG q75 copy)"


class MissingMetric(KeyError):
    """A record lacks a metric (or detail) a claim reads."""


# ---------------------------------------------------------------------------------------------
# Getters: record -> one value per seed (None where a seed has none)

Getter = Callable[[dict], list]


def metric(name: str) -> Getter:
    """One of the record's summarized metrics, per seed. '{gn}' and '{ws+gn}' in `name` become the record's own
    specs of plain and WS Group Norm (e.g. 'gn', 'gn:8'), so a config's group count needs no edit here."""
    def get(record: dict) -> list:
        full = gn_name(name, record)
        if full not in record["summary"]:
            raise MissingMetric(full)
        return [record["per_seed"][str(s)]["metrics"].get(full) for s in record["seeds"]]
    get.label = name
    return get


def derived(fn: Callable[[dict], float | None], label: str) -> Getter:
    """`fn(details)` for each seed's details; a missing key means the record lacks what it needs."""
    def get(record: dict) -> list:
        out = []
        for s in record["seeds"]:
            try:
                out.append(fn(record["per_seed"][str(s)]["details"]))
            except (KeyError, StopIteration, IndexError) as e:
                raise MissingMetric(label) from e
        return out
    get.label = label
    return get


def _arms(record: dict) -> list[str]:
    # The norm specs a record's config names (its `norms`, `range_norms` or `runs`)
    c = record["config"]
    specs = list(c.get("norms") or []) + list(c.get("range_norms") or [])
    specs += [r[0] for r in c.get("runs") or [] if isinstance(r, (list, tuple)) and r and isinstance(r[0], str)]
    return list(dict.fromkeys(specs))


def gn_name(template: str, record: dict) -> str:
    """`template` with the record's own names put in: '{small}' and '{large}' become its smallest and largest batch
    size (`batch_sizes`), and '{family}' (e.g. '{gn}', '{ws+gn}', '{evos0}') its spec of that norm family (e.g.
    'gn:8'), so a config's group count or batch sizes need no edit in a claim."""
    if "{" not in template:
        return template
    batches = sorted(config_value(record, "batch_sizes", default=[]) or [])
    if batches:
        template = template.replace("{small}", str(batches[0])).replace("{large}", str(batches[-1]))
    arms = _arms(record)
    return re.sub(r"\{([a-z0-9+-]+)\}", lambda m: next((a for a in arms if a.split(":")[0] == m.group(1)), m.group(1)),
                  template)


def gn_note(record: dict, norms: Sequence[str] = ("gn",)) -> str:
    """Where 'GN' is Instance Norm at this width: the channels per group the runs recorded (or, for runs saved
    before they recorded it, what `gn` with gcd(C, 32) groups gives in the narrowest layer)."""
    from ..common import _runs_with_implementation

    recorded = {}  # norm family -> channels per group, as the runs recorded them
    for seed in record["seeds"]:
        for run in _runs_with_implementation(record["per_seed"][str(seed)]["details"]):
            recorded.setdefault(str(run.get("norm", "")).split(":")[0], run["implementation"]["group_channels"])
    notes, width = [], config_value(record, "width")
    for norm in norms:
        sizes = recorded.get(norm)
        if sizes:
            notes.append(f"'{norm}' has one channel per group in some layers (Instance Norm there)" if min(sizes) == 1
                         else f"'{norm}': groups of {'/'.join(map(str, sizes))} channels")
        elif norm not in recorded and width is not None:
            spec = gn_name("{" + norm + "}", record)
            groups = int(spec.split(":")[1]) if ":" in spec else 32
            narrow = int(width) if isinstance(width, int) else max(8, int(round(64 * width / 8)) * 8)
            if narrow // math.gcd(narrow, groups) == 1:
                notes.append(f"at width {width} the narrowest layers have {narrow} channels, so '{spec}' has one "
                             "channel per group there: Instance Norm, not Group Norm")
    return "; ".join(notes)


def config_value(record: dict, *keys: str, default: Any = None) -> Any:
    """A config field, trying the names it has had (records keep the config they ran with)."""
    for key in keys:
        node = record["config"]
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return default


# ---------------------------------------------------------------------------------------------
# Arms and the rules that read them

@dataclass(frozen=True)
class Chance:
    """Rule 1: an arm never learned when the mean over seeds of `measure` is within `margin` of `level`,
    what an untrained network gives."""

    measure: Getter
    level: float
    margin: float
    what: str

    def reason(self, record: dict, label: str) -> str | None:
        s = summarize(self.measure(record))
        if s.mean is None or abs(s.mean - self.level) > self.margin:
            return None
        return (f"{label} never learned: its {self.what} is {s.mean:.4g} (mean over {s.n} seeds), within {self.margin:g} "
                f"of {self.level:.4g}, an untrained network's")


def chance_accuracy(name: str) -> Chance:
    """CIFAR-10 test accuracy within 2 points of 10%."""
    return Chance(metric(name), CHANCE_ACC, CHANCE_ACC_MARGIN, "final test accuracy")


def chance_loss(getter: Getter, what: str = "lowest smoothed loss of the range test") -> Chance:
    """A CIFAR-10 cross-entropy within 0.05 of ln 10."""
    return Chance(getter, CHANCE_LOSS, CHANCE_LOSS_MARGIN, what)


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: its label, its value per seed, and (rule 1) how to tell it never learned."""

    label: str
    value: Getter
    chance: Chance | None = None

    def name(self, record: dict) -> str:
        """The label with the record's own names put in (`gn_name`)."""
        return gn_name(self.label, record)


def accuracy_arm(label: str, name: str) -> Arm:
    """An arm measured by a CIFAR-10 accuracy metric, which is also its check of having learned."""
    return Arm(label, metric(name), chance_accuracy(name))


@dataclass(frozen=True)
class Floor:
    """Rule 2: a bound the measure cannot pass (`value`, or a function of the record), within `tol`."""

    value: float | Callable[[dict], float]
    what: str
    tol: float = 1e-9

    def reached(self, record: dict, *arms: list) -> str | None:
        bound = self.value(record) if callable(self.value) else self.value
        vals = [v for arm in arms for v in arm]
        if vals and all(v is not None and abs(v - bound) <= self.tol for v in vals):
            return f"every seed of both arms sits at {self.what} ({bound:g}): the measure could not move in this run"
        return None


@dataclass(frozen=True)
class Trained:
    """Rule 4: the run's baseline arm (`metric`, named `label`) must reach `level` test accuracy."""

    metric: str
    label: str
    level: float = TRAINED_LEVEL

    def reason(self, record: dict) -> str | None:
        name = gn_name(self.metric, record)
        if name not in record["summary"]:
            return f"the record has no {name!r}, the baseline that says whether its networks are trained"
        s = summarize(metric(name)(record))
        if s.mean is not None and s.mean >= self.level:
            return None
        return (f"the baseline, {gn_name(self.label, record)}, reached {s.format(1, percent=True)} test accuracy, under the {self.level:.0%} "
                f"of a trained CIFAR-10 network: these networks are early in training")


@dataclass(frozen=True)
class Phase:
    """Rule 5: the claim is about `what` at `at` (in the unit the run counts: `reach(record)`)."""

    what: str
    at: float
    reach: Callable[[dict], float]
    unit: str

    def reason(self, record: dict) -> str | None:
        got = self.reach(record) or 0
        if got >= self.at:
            return None
        return f"the claim is about {self.what}; our run stops at {self.unit} {got:,.0f}"


def iterations(record: dict) -> float:
    """How far a GAN run trains: its iterations."""
    return config_value(record, "iterations", default=0)


def epochs(record: dict) -> float:
    """How far a classification run trains: its epochs."""
    return config_value(record, "epochs", default=0)


# ---------------------------------------------------------------------------------------------
# Comparisons: record -> Outcome, each with the arms it reads

@dataclass(frozen=True)
class Outcome:
    """What a comparison computed: the word (a verdict word, "not testable here" or "not run"), our figure, why."""

    word: str
    figure: str
    reason: str = ""


def _fmt(s: Summary, kind: str) -> str:
    if kind == "acc":
        return s.format(1, percent=True)
    if kind == "rate":
        return s.format(0, percent=True)
    return s.format({"loss": 3, "recon": 4, "lr": 2, "s": 1, "steps": 0, "ratio": 3, "frac": 3}[kind])


def _std(s: Summary) -> str:
    return "—" if s.std is None else f"{s.std:.2g}"


def _diff_text(d: Summary, kind: str) -> str:
    if d.mean is None:
        return "no paired seeds"
    scale, unit, spec = {"acc": (100, " points", ".1f"), "rate": (100, " points", ".0f"), "lr": (1, " decades", ".2f"),
                         "s": (1, " s", ".1f"), "steps": (1, " steps", ".0f")}.get(kind, (1, "", ".3g"))
    text = f"{d.mean * scale:+{spec}}{unit}"
    if d.low is not None:
        text += f" [{d.low * scale:+{spec}}, {d.high * scale:+{spec}}]"
    return text


@dataclass(frozen=True)
class compare:  # noqa: N801 (read as a verb in the claim lists)
    """Judge "A is `direction` than B (by `margin`)" from the paired seeds of one record; `floor`: rule 2."""

    a: Arm
    b: Arm
    direction: str = "higher"
    margin: float = 0.0
    kind: str = "acc"
    floor: Floor | None = None

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.a, self.b)

    def __call__(self, record: dict) -> Outcome:
        va, vb = self.a.value(record), self.b.value(record)
        v = verdict(va, vb, direction=self.direction, margin=self.margin)
        figure = (f"{self.a.name(record)}: {_fmt(summarize(va), self.kind)}; {self.b.name(record)}: "
                  f"{_fmt(summarize(vb), self.kind)}; "
                  f"difference {_diff_text(v.difference, self.kind)}")
        at_floor = self.floor.reached(record, va, vb) if self.floor else None
        if at_floor:
            return Outcome("not testable here", figure, at_floor)
        return Outcome(v.word, figure, v.reason)


@dataclass(frozen=True)
class against:  # noqa: N801
    """Judge one arm against the source's number (the difference to a constant, per seed)."""

    a: Arm
    value: float
    direction: str
    margin: float = 0.0
    kind: str = "acc"
    value_text: str = ""

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.a,)

    def __call__(self, record: dict) -> Outcome:
        va = self.a.value(record)
        v = verdict(va, [self.value] * len(va), direction=self.direction, margin=self.margin)
        return Outcome(v.word, f"{self.a.name(record)}: {_fmt(summarize(va), self.kind)} (the source: "
                               f"{self.value_text or self.value})", v.reason)


@dataclass(frozen=True)
class relative:  # noqa: N801
    """Judge the per-seed relative difference A / B − 1 against ±`margin`."""

    a: Arm
    b: Arm
    direction: str
    margin: float

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.a, self.b)

    def __call__(self, record: dict) -> Outcome:
        va, vb = self.a.value(record), self.b.value(record)
        rel = [None if x is None or y is None or y == 0 else x / y - 1 for x, y in zip(va, vb)]
        v = verdict(rel, [0.0] * len(rel), direction=self.direction, margin=self.margin)
        d = v.difference
        pct = "—" if d.mean is None else f"{d.mean * 100:+.1f}%" + (
            "" if d.low is None else f" [{d.low * 100:+.1f}%, {d.high * 100:+.1f}%]")
        la, lb = self.a.label, self.b.label
        return Outcome(v.word, f"{la}: {_fmt(summarize(va), 'recon')}; {lb}: {_fmt(summarize(vb), 'recon')}; "
                               f"{la} ÷ {lb} − 1 = {pct}", v.reason)


@dataclass(frozen=True)
class both:  # noqa: N801
    """A claim that needs two comparisons at once: supported when both are, contradicted when either is."""

    first: Any
    second: Any
    how: str

    @property
    def arms(self) -> tuple[Arm, ...]:
        return tuple(dict.fromkeys(self.first.arms + self.second.arms))

    def __call__(self, record: dict) -> Outcome:
        x, y = self.first(record), self.second(record)
        words = (x.word, y.word)
        word = ("not testable here" if "not testable here" in words else "supported" if words == ("supported",) * 2
                else "contradicted" if "contradicted" in words else "inconclusive")
        reason = "" if word in ("supported", "contradicted") else (x.reason or y.reason)
        return Outcome(word, f"{x.figure}. {self.how}: {y.figure}", reason)


@dataclass(frozen=True)
class spread_ratio:  # noqa: N801
    """Judge "A varies more from seed to seed than B" by the F-test of their variances (two-sided 95%)."""

    a: Arm
    b: Arm

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (self.a, self.b)

    def __call__(self, record: dict) -> Outcome:
        sa, sb = summarize(self.a.value(record)), summarize(self.b.value(record))
        figure = (f"{self.a.label}: {_fmt(sa, 'recon')}, std over seeds {_std(sa)}; {self.b.label}: "
                  f"{_fmt(sb, 'recon')}, std {_std(sb)}")
        if sa.std is None or sb.std is None or sa.n < 2 or sb.n < 2:
            return Outcome("inconclusive", figure, "a spread needs at least 2 seeds per arm")
        if sb.std == 0 or sa.std == 0:
            return Outcome("inconclusive", figure, "an arm has the same value on every seed")
        from scipy.stats import f

        ratio = sa.std ** 2 / sb.std ** 2
        lo, hi = f.ppf(0.025, sa.n - 1, sb.n - 1), f.ppf(0.975, sa.n - 1, sb.n - 1)
        word = "supported" if ratio > hi else "contradicted" if ratio < lo else "inconclusive"
        reason = "" if word != "inconclusive" else (
            f"variance ratio {ratio:.3g} lies inside the F-test's 95% range [{lo:.3g}, {hi:.3g}] for these seeds")
        return Outcome(word, figure + f"; variance ratio {ratio:.3g}", reason)


@dataclass(frozen=True)
class rank_flip:  # noqa: N801
    """Judge "a short measurement may rank A and B the other way round from a long one": supported when both
    paired differences are decided and of opposite sign; a ranking that holds at both lengths leaves a
    "may" inconclusive, never contradicted."""

    short: tuple[Arm, Arm]
    long: tuple[Arm, Arm]
    short_text: str
    long_text: str

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self.short + self.long

    def __call__(self, record: dict) -> Outcome:
        vs = [verdict(a.value(record), b.value(record), direction="higher") for a, b in (self.short, self.long)]
        la, lb = self.short[0].label, self.short[1].label
        figure = "; ".join(f"{la} − {lb}, {t}: {_diff_text(v.difference, 'recon')} (n={v.difference.n})"
                           for v, t in zip(vs, (self.short_text, self.long_text)))
        decided = [v.word != "inconclusive" for v in vs]
        if all(decided) and vs[0].word != vs[1].word:
            return Outcome("supported", figure + " (the ranking flips)")
        reason = ("the two lengths rank the models the same way here, which a 'may' does not contradict"
                  if all(decided) else vs[0].reason or vs[1].reason)
        return Outcome("inconclusive", figure, reason)


# ---------------------------------------------------------------------------------------------
# The claim and its assessment

@dataclass(frozen=True)
class Claim:
    """One claim of one source (or of the experiment's own question) and how a saved record tests it.

    `source`: a key of `labnorm.claims.SOURCES`, or "" for a question of the experiment's own (its
    notebook's, from a paper that is not one of the five sources: `where` cites it); `judge`: a
    comparison (`compare`, `against`, ...); `batch`: the batch our run uses, where the config alone
    does not say; `partial` (text, or a function of the record): where our run differs from the
    claim's setting; `trained` / `untrained`: rule 4 (a classification claim gives one of them);
    `phase`: rule 5; `keeps`: the words rules 4 and 5 leave standing; `part`: which part of a quote this
    is, where one quote makes several claims judged apart (WS helps GN; WS helps BN). Claims with the same
    source, quote and part are one claim, whichever experiments test it (`labnorm.claims.decide`).
    """

    source: str
    where: str
    quote: str
    tests: str
    judge: Callable[[dict], Outcome]
    batch: str = ""
    partial: str | Callable[[dict], str] = ""
    trained: Trained | None = None
    untrained: str = ""
    phase: Phase | None = None
    keeps: tuple[str, ...] = ()
    part: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two claims the same claim: source, quote and part."""
        return (self.source, self.quote, self.part)

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self.judge.arms


@dataclass(frozen=True)
class Assessment:
    """A claim judged on one record: the verdict word (one of `WORDS`), our run, our figure and why."""

    claim: Claim
    experiment: str
    word: str
    run: str
    figure: str
    reason: str
    partial: str
    # True when a rule computed from the record (not the interval) set the word: no record, an arm that never
    # learned, a measure at a bound, one seed, an untrained baseline, an early phase — the run cannot show the claim
    limited: bool = False

    def __str__(self) -> str:
        return f"{self.word}: {self.claim.tests} — {self.figure}" + (f" ({self.reason})" if self.reason else "")


def run_text(record: dict, batch: str = "") -> str:
    """Model, data, budget, batch and seeds of a record, from its config and provenance."""
    c, p = record["config"], record.get("provenance", {})
    width = c.get("width")
    if "channels" in c:
        model = f"DCGAN ({c['channels']} base channels)"
    else:
        model = str(c.get("model", record["experiment"])) + (f" (width {width})" if width is not None else "")
    if "iterations" in c:
        budget = f"{c['iterations']:,} iterations"
    elif "epochs" in c:
        budget = f"{c['epochs']} epoch{'s' if c['epochs'] != 1 else ''}"
        if "train_images" in c:
            budget += f" on {c['train_images']:,} training images"
        if "test_images" in c:
            budget += f", tested on {c['test_images']:,}"
    else:
        steps = c.get("num_iter") or c.get("range_num_iter")
        budget = f"range test of {steps} steps" if steps else ""
    seeds = record.get("seeds") or p.get("seeds") or []
    batch = batch or (str(c["batch_size"]) if "batch_size" in c else "")
    parts = [model, p.get("dataset") or DATASET, budget, f"batch {batch}" if batch else "",
             f"seeds {', '.join(str(s) for s in seeds)} (n={len(seeds)})", f"{record.get('scale', '')} scale"]
    return "; ".join(x for x in parts if x)


def assess(claim: Claim, record: dict | None, experiment: str = "") -> Assessment:
    """The verdict on `claim` from `record` (the saved record of its experiment, or None), by the rules above."""
    experiment = experiment or (record or {}).get("experiment", "")
    if record is None:
        return Assessment(claim, experiment, "not run", "—", "—", f"no saved record of {experiment} yet", "", True)
    partial = claim.partial(record) if callable(claim.partial) else claim.partial
    run = run_text(record, gn_name(claim.batch, record))

    def out(word: str, figure: str, reason: str, limited: bool = True) -> Assessment:
        return Assessment(claim, experiment, word, run, figure, reason, partial, limited)

    try:
        result = claim.judge(record)
        flat = [r for arm in claim.arms if arm.chance for r in [arm.chance.reason(record, arm.name(record))] if r]
    except MissingMetric as e:
        return out("not run", "—", _missing(record, str(e.args[0])))
    word, reason, limited = result.word, result.reason, False
    if flat:  # rule 1
        return out("not testable here", result.figure, "; ".join(flat))
    if word == "not testable here":  # rule 2, from the comparison
        return out(word, result.figure, reason)
    if len(record.get("seeds", [])) < 2:  # rule 3
        word, reason, limited = "inconclusive", "1 seed: no interval, so no verdict", True
    for rule in (claim.trained, claim.phase):  # rules 4 and 5
        limit = rule.reason(record) if rule is not None else None
        if limit and word not in claim.keeps:
            word, reason, limited = "inconclusive", limit, True
            break
    return out("inconclusive at this scale" if word == "inconclusive" else word, result.figure, reason, limited)


def _missing(record: dict, name: str) -> str:
    # A record saved unit by unit may simply not have reached the unit that metric comes from yet
    from ..units import missing_units

    pending = {u for units in missing_units(record).values() for u in units}
    name = gn_name(name, record)  # a derived measure's label names its unit with the config's '{large}' and the like
    unit = name.split("/", 1)[-1]
    if unit in pending:
        return f"not run yet: the record is partial, and its {unit!r} runs are still to come"
    # (a unit may stand for several metrics: the grand comparison's GN run at the full batch is its every column)
    arm = unit.split("/", 1)[0]
    if any(p.split("/", 1)[0] == arm for p in pending):
        return f"not run yet: the record is partial, and its {arm!r} runs are still to come"
    return f"the record has no {name!r}"


def of(experiment: str) -> list[Claim]:
    """The claims `experiment` tests: `CLAIMS` of `labnorm.experiments.claims.<experiment>` ([] if it has none)."""
    try:
        module = importlib.import_module(f"{__name__}.{experiment}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{experiment}":
            raise
        return []
    return list(module.CLAIMS)


def verdicts(record: dict, claims: Sequence[Claim] | None = None) -> list[Assessment]:
    """Every claim of the record's experiment judged on it: what its `report()` prints."""
    claims = of(record["experiment"]) if claims is None else claims
    return [assess(c, record) for c in claims]
