"""transformer_norms: its units and sizes, the language-model training pieces, and the rule that says whether a
character model has learned the text."""

import math
import os
from pathlib import Path

import pytest
import torch

from labnorm.experiments import runner
from labnorm.experiments import transformer_norms as tn
from labnorm.experiments.claims import WORDS, assess
from labnorm.experiments.claims import transformer_norms as claims
from labnorm.models import build_model
from labnorm.train.lm import lm_loss, lr_sensitivity, probe, warmup_cosine

DATA = Path(os.environ.get("LABNORM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_text = pytest.mark.skipif(not (DATA / "tinyshakespeare.txt").is_file(), reason="no tinyshakespeare.txt")


def test_units_name_their_placement_norm_and_schedule():
    assert tn.parse("post-ln@no-warmup@lr=0.01") == {"placement": "post", "norm": "ln", "qk": False, "warmup": False,
                                                     "lr": 0.01, "arm": "post-ln@no-warmup"}
    assert tn.parse("pre-rms-zero-centred")["norm"] == "rms-zero-centred"
    assert tn.parse("pre-ln+qk") == {"placement": "pre", "norm": "ln", "qk": True, "warmup": True, "lr": None,
                                     "arm": "pre-ln+qk"}
    cpu = tn.CONFIGS["cpu"]
    units = tn.units(cpu)
    assert len(units) == len(set(units)) == len(cpu.arms) + len(cpu.sweep_arms) * len(cpu.sweep_lrs) == 17
    # Every arm builds the model it names, and every sweep arm is a main arm at the base learning rate
    assert set(cpu.sweep_arms) <= set(cpu.arms) and cpu.baseline in cpu.arms
    for unit in units:
        a = tn.parse(unit)
        model = build_model("tiny_gpt", norm=a["norm"], placement=a["placement"], qk_norm="ln" if a["qk"] else None,
                            dim=16, num_layers=1, num_heads=2, context=8)
        assert model(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, 65)
    # The cpu budget the module doc states: 39 runs at 3 seeds (the sweep on one seed)
    assert len(cpu.arms) * 3 + len(cpu.sweep_arms) * len(cpu.sweep_lrs) * len(cpu.sweep_seeds) == 39


def test_warm_up_then_cosine_and_the_cosine_alone():
    def lrs(warmup):
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, out = warmup_cosine(opt, 100, warmup, 0.1), []
        for _ in range(100):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    warm, cold = lrs(10), lrs(0)
    # LinearLR: $\eta (1/w + (1 - 1/w) i / w)$ at step $i < w$, the peak at step $w$
    assert warm[0] == pytest.approx(0.1) and warm[5] == pytest.approx(0.55) and warm[9] == pytest.approx(0.91)
    assert warm[10] == pytest.approx(1.0) and warm[-1] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 89 / 90)) / 2)
    assert cold[0] == 1.0 and cold[-1] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 99 / 100)) / 2)
    assert all(a >= b for a, b in zip(cold, cold[1:]))


@torch.no_grad()
def test_probe_reads_the_attention_s_own_logits_and_the_stream():
    torch.manual_seed(0)
    for qk in (None, "ln"):
        model = build_model("tiny_gpt", norm="ln", qk_norm=qk, dim=16, num_layers=2, num_heads=2, context=8).double()
        x = torch.randint(0, 65, (3, 8))
        got = probe(model, x)
        # Written out: the stream block by block, each attention's logits from its own projections
        h = model.tok_emb(x) + model.pos_emb(torch.arange(8))
        for i, block in enumerate(model.blocks):
            a = block.norm1(h)
            q, k, _ = block.attn.qkv(a).reshape(3, 8, 3, 2, 8).permute(2, 0, 3, 1, 4)
            if qk:
                q, k = block.attn.qk_norm.q_norm(q), block.attn.qk_norm.k_norm(k)
            ell = q @ k.transpose(-2, -1) / math.sqrt(8)
            keep = torch.ones(8, 8, dtype=torch.bool).tril()
            assert got["max_logit"][i] == pytest.approx(float(ell[..., keep].max()))
            h = block(h)
            assert got["rms"][i] == pytest.approx(float(h.pow(2).mean().sqrt()))
        # The hooks are gone: a second probe gives the same answer
        assert probe(model, x) == got


def test_lr_sensitivity_counts_a_diverged_rate_as_the_initial_loss():
    assert lr_sensitivity([2.0, 2.2, 2.4], 4.17) == pytest.approx((0 + 0.2 + 0.4) / 3)
    assert lr_sensitivity([2.0, None, 5.0], 4.17) == pytest.approx((0 + 2.17 + 2.17) / 3)
    assert lr_sensitivity([2.0, float("nan")], 4.17) == pytest.approx(2.17 / 2)


def _record(values: dict[str, list]) -> dict:
    seeds = list(range(len(next(iter(values.values())))))
    return {"experiment": "transformer_norms", "scale": "cpu", "seeds": seeds,
            "config": {"model": "tiny_gpt", "iterations": 800, "batch_size": 32},
            "summary": {k: {} for k in values}, "provenance": {"seeds": seeds},
            "per_seed": {str(s): {"metrics": {k: v[s] for k, v in values.items()}, "details": {}} for s in seeds}}


def test_a_baseline_that_has_not_learned_the_text_leaves_every_interval_inconclusive():
    h = [3.309] * 3
    rms = claims.CLAIMS[2]  # RMSNorm within MATCH of LayerNorm
    learned = _record({"unigram_entropy": h, "val_loss/pre-ln": [2.02, 2.03, 2.01], "val_loss/pre-rms": [2.02, 2.03, 2.015]})
    assert claims.LEARNED.reason(learned) is None and assess(rms, learned).word == "supported"
    early = _record({"unigram_entropy": h, "val_loss/pre-ln": [2.5, 2.51, 2.49], "val_loss/pre-rms": [2.5, 2.51, 2.495]})
    out = assess(rms, early)
    assert out.word == "inconclusive at this scale" and "not 1 nat below the text's unigram entropy (3.309)" in out.reason
    # Rule 1: an arm whose loss sits at the unigram entropy never learned
    flat = _record({"unigram_entropy": h, "val_loss/pre-ln": [2.02, 2.03, 2.01], "val_loss/pre-rms": [3.3, 3.31, 3.29]})
    assert assess(rms, flat).word == "not testable here"
    assert {c.source for c in claims.CLAIMS} == {""} and all(c.where.strip() and c.quote.strip() for c in claims.CLAIMS)


@needs_text
def test_the_unigram_entropy_constant_is_the_text_s():
    from labnorm.text import load_tinyshakespeare

    assert load_tinyshakespeare(DATA, download=False).unigram_entropy() == pytest.approx(claims.UNIGRAM_ENTROPY,
                                                                                          abs=5e-4)


@needs_text
def test_a_smoke_run_reports_a_table_figures_and_every_claim(monkeypatch):
    monkeypatch.setenv("LABNORM_DATA", str(DATA))
    record = runner.run("transformer_norms", "smoke", seeds=2, save=False, progress=False, device="cpu")
    rep = runner.get("transformer_norms").report(record)
    assert rep.tables and len(rep.figures) == 2 and [v.claim for v in rep.verdicts] == claims.CLAIMS
    assert all(v.word in WORDS for v in rep.verdicts)
    assert any(n.startswith("Baseline validation loss: pre-ln") and "unigram" in n for n in rep.notes)
    seed0 = record["per_seed"]["0"]["details"]["units"]
    assert "skipped" not in seed0["pre-ln@lr=0.01"] and "skipped" in record["per_seed"]["1"]["details"]["units"][
        "pre-ln@lr=0.01"]
    assert record["summary"]["lr_sensitivity/pre-ln"]["n"] == 1
    for fig in rep.figures:
        assert fig.png()[:4] == b"\x89PNG"
    model = build_model("tiny_gpt", dim=16, num_layers=1, num_heads=2, context=16)
    x = torch.randint(0, 65, (4, 16))
    assert lm_loss(model, x, x, 3) == pytest.approx(lm_loss(model, x, x, 4))
