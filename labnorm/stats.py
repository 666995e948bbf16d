r"""Seeds → mean, interval, paired difference and verdict.

One training run is one draw from a distribution over seeds (initialization, data order,
augmentation). A number from one seed cannot tell a real difference from noise, so labnorm
reports every metric over seeds and judges every claim from a **paired interval**.

**Interval.** For $n$ values $v_1, \dots, v_n$ (one per seed) with mean $\bar v$ and sample
standard deviation $s$, the 95% interval is Student-t's

$$\bar v \pm t_{0.975,\, n-1} \, \frac{s}{\sqrt n},$$

which assumes the seeds' values are roughly normal — with 3 to 10 seeds nothing better can be
checked. With one seed there is no interval (`None`).

**Paired difference.** Two arms A and B run on the *same* seeds (same initialization draw and
data order for seed $i$) are compared through the per-seed differences $d_i = a_i - b_i$: the
seed-to-seed variation they share cancels, so the interval of $\bar d$ is much narrower than the
two arms' intervals side by side. Seeds where either arm has no value (a diverged run) are left
out, and the count says so.

**Verdict.** A claim names a metric of two arms, a direction and optionally a margin $m$:

| direction | claim | `supported` when | `contradicted` when |
|---|---|---|---|
| `higher` | A exceeds B by more than $m$ | interval of $\bar d$ lies above $m$ | it lies below $m$ |
| `lower` | A is below B by more than $m$ | interval lies below $-m$ | it lies above $-m$ |
| `equal` | A and B are within $\pm m$ | interval lies inside $[-m, m]$ | it lies outside $[-m, m]$ |

Anything else — an interval that straddles the boundary, or fewer than two paired seeds — is
`inconclusive`. A single seed can therefore never support or contradict anything.

**Identical differences.** When every seed gives exactly the same difference (two arms that both
sit at chance, a run that blows up on every seed where the other never does), the sample
standard deviation is 0 and the t-interval shrinks to a point: it would call three seeds
certain. Such a degenerate interval is not used; the claim is judged by a sign test instead —
$n$ identical differences on the claimed side happen by chance with probability $2^{1-n}$ (two
sides), below 5% from $n = 6$ on — so fewer than 6 such seeds are `inconclusive`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

__all__ = ["METHOD", "Summary", "Verdict", "summarize", "paired_difference", "verdict", "VERDICTS"]

# How every interval of labnorm is computed (printed beside tables and stored in records).
METHOD = "95% Student-t interval over seeds"
# Identical paired differences decide a claim only from this many seeds on (two-sided sign test, p < 0.05).
_SIGN_TEST_SEEDS = 6
# The three words a verdict can be.
VERDICTS = ("supported", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and 95% interval of one metric over seeds.

    `n` counts the values that exist; `missing` the seeds that had none (e.g. diverged runs).
    `low`/`high` are None with fewer than two values.
    """

    mean: float | None
    std: float | None
    n: int
    low: float | None
    high: float | None
    missing: int = 0
    method: str = METHOD

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n": self.n, "ci95": [self.low, self.high],
                "missing": self.missing, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "Summary":
        low, high = d.get("ci95") or (None, None)
        return cls(d["mean"], d["std"], d["n"], low, high, d.get("missing", 0), d.get("method", METHOD))

    def format(self, digits: int = 3, percent: bool = False) -> str:
        """'0.812 ± 0.011 (n=3)': mean ± half-width of the interval; one seed shows its value and n=1."""
        if self.mean is None:
            return f"— (n=0{self._missing_note()})"
        scale = 100.0 if percent else 1.0
        unit = "%" if percent else ""
        text = f"{self.mean * scale:.{digits}f}{unit}"
        if self.low is not None and self.high is not None:
            text += f" ± {(self.high - self.low) / 2 * scale:.{digits}f}{unit}"
        return text + f" (n={self.n}{self._missing_note()})"

    def _missing_note(self) -> str:
        return f", {self.missing} without a value" if self.missing else ""


def summarize(values: Iterable[float | None]) -> Summary:
    """The `Summary` of one value per seed (None for a seed without a value)."""
    values = list(values)
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    missing = len(values) - len(present)
    n = len(present)
    if n == 0:
        return Summary(None, None, 0, None, None, missing)
    mean = sum(present) / n
    if n == 1:
        return Summary(mean, None, 1, None, None, missing)
    # Sample standard deviation (n - 1 in the denominator), then the t-interval of the mean
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (n - 1))
    from scipy.stats import t  # imported here: `import labnorm` stays light

    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half, missing)


def paired_difference(a: Sequence[float | None], b: Sequence[float | None]) -> Summary:
    """The `Summary` of $a_i - b_i$ over the seeds where both arms have a value."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference: the arms have {len(a)} and {len(b)} seeds; pair them by seed")
    diffs = [None if x is None or y is None else x - y for x, y in zip(a, b)]
    return summarize(diffs)


@dataclass(frozen=True)
class Verdict:
    """A computed verdict: the word, the paired difference it rests on and the claim it judges."""

    word: Literal["supported", "contradicted", "inconclusive"]
    difference: Summary
    claim: str
    reason: str = field(default="")

    def __str__(self) -> str:
        d = self.difference
        interval = "no interval" if d.low is None else f"95% interval [{d.low:+.4g}, {d.high:+.4g}]"
        mean = "—" if d.mean is None else f"{d.mean:+.4g}"
        return f"{self.word}: {self.claim} — paired difference {mean}, {interval}, {d.n} paired seed{'s' if d.n != 1 else ''}" + (
            f" ({self.reason})" if self.reason else "")


def verdict(
    a: Sequence[float | None], b: Sequence[float | None], *,
    direction: Literal["higher", "lower", "equal"] = "higher", margin: float = 0.0, claim: str = "",
) -> Verdict:
    """Judge a claim about arm A against arm B (values per seed, paired by position); see the module doc."""
    if direction not in ("higher", "lower", "equal"):
        raise ValueError(f"verdict: direction must be 'higher', 'lower' or 'equal', got {direction!r}")
    if margin < 0:
        raise ValueError(f"verdict: margin must be >= 0, got {margin}")
    if direction == "equal" and margin == 0:
        raise ValueError("verdict: an 'equal' claim needs a margin > 0 (no interval lies inside [0, 0])")
    diff = paired_difference(a, b)
    claim = claim or f"A {direction} than B" + (f" by {margin:g}" if margin else "")
    if diff.low is None:
        return Verdict("inconclusive", diff, claim, "an interval needs at least 2 paired seeds")
    lo, hi = diff.low, diff.high
    if diff.std == 0 and diff.n < _SIGN_TEST_SEEDS:
        return Verdict("inconclusive", diff, claim, f"all {diff.n} paired differences are equal: the interval is "
                       f"degenerate, and a sign test needs {_SIGN_TEST_SEEDS} such seeds")
    if direction == "higher":
        word = "supported" if lo > margin else "contradicted" if hi < margin else "inconclusive"
    elif direction == "lower":
        word = "supported" if hi < -margin else "contradicted" if lo > -margin else "inconclusive"
    else:
        word = "supported" if -margin < lo and hi < margin else "contradicted" if lo > margin or hi < -margin \
            else "inconclusive"
    reason = "the interval straddles the claim's boundary" if word == "inconclusive" else ""
    return Verdict(word, diff, claim, reason)
