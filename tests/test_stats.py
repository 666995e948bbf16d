"""labnorm.stats: summaries over seeds, paired differences and computed verdicts."""

import math

import pytest
from scipy import stats as scipy_stats

import labnorm
from labnorm.stats import paired_difference, summarize, verdict


def test_summary_is_the_student_t_interval():
    s = summarize([0.80, 0.82, 0.84])
    assert s.n == 3 and s.mean == pytest.approx(0.82) and s.std == pytest.approx(0.02)
    half = scipy_stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)  # 4.303 * 0.02 / 1.732
    assert (s.low, s.high) == (pytest.approx(0.82 - half), pytest.approx(0.82 + half))
    assert s.format() == f"0.820 ± {half:.3f} (n=3)"


def test_one_seed_has_no_interval_and_missing_values_are_counted():
    s = summarize([0.5])
    assert s.n == 1 and s.low is None and s.std is None and s.format() == "0.500 (n=1)"
    s = summarize([0.5, None, float("nan"), 0.7])
    assert s.n == 2 and s.missing == 2 and "2 without a value" in s.format()
    assert summarize([None]).mean is None


def test_paired_difference_cancels_what_the_seeds_share():
    a, b = [0.60, 0.70, 0.80], [0.50, 0.61, 0.70]
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.0966667, abs=1e-6)
    # Unpaired, the arms' intervals overlap widely; paired, the difference is clearly positive
    assert summarize(a).low < summarize(b).high and d.low > 0
    with pytest.raises(ValueError, match="pair them by seed"):
        paired_difference([1.0], [1.0, 2.0])


def test_one_seed_is_always_inconclusive():
    v = labnorm.verdict([0.9], [0.1])
    assert v.word == "inconclusive" and "at least 2 paired seeds" in v.reason


def test_an_interval_that_straddles_zero_is_inconclusive():
    v = verdict([0.50, 0.60, 0.55], [0.55, 0.55, 0.55])
    assert v.difference.low < 0 < v.difference.high and v.word == "inconclusive"


def test_clear_cases():
    better, worse = [0.80, 0.82, 0.81], [0.70, 0.71, 0.72]
    assert verdict(better, worse, direction="higher").word == "supported"
    assert verdict(worse, better, direction="higher").word == "contradicted"
    assert verdict(worse, better, direction="lower").word == "supported"
    assert verdict(better, worse, direction="lower").word == "contradicted"
    # A margin raises the bar: ahead by ~0.1, not by 0.2
    assert verdict(better, worse, direction="higher", margin=0.2).word == "contradicted"
    # Equal within a margin
    close = [0.801, 0.821, 0.809]
    assert verdict(close, better, direction="equal", margin=0.02).word == "supported"
    assert verdict(better, worse, direction="equal", margin=0.02).word == "contradicted"


def test_pairs_with_a_missing_arm_are_dropped():
    v = verdict([0.8, None, 0.81, 0.82], [0.7, 0.7, 0.71, 0.70])
    assert v.difference.n == 3 and v.difference.missing == 1 and v.word == "supported"


def test_bad_claims_are_refused():
    with pytest.raises(ValueError, match="direction"):
        verdict([1, 2], [1, 2], direction="bigger")
    with pytest.raises(ValueError, match="needs a margin"):
        verdict([1, 2], [1, 2], direction="equal")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        verdict([1, 2], [1, 2], margin=-1)


def test_identical_differences_need_a_sign_test_worth_of_seeds():
    # Both arms at chance on every seed, or one arm blowing up on every seed: the t-interval is a point
    v = verdict([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], direction="equal", margin=0.02)
    assert v.word == "inconclusive" and "degenerate" in v.reason
    assert verdict([1.0] * 3, [0.0] * 3).word == "inconclusive"
    assert verdict([1.0] * 6, [0.0] * 6).word == "supported"  # 2 * 0.5**6 = 0.03 < 0.05
    assert verdict([0.0] * 6, [1.0] * 6).word == "contradicted"
