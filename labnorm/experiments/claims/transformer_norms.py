r"""The claims `transformer_norms` tests: placements, norms and QK-norm in a tiny character-level GPT (notebook 12).

None of the five sources speaks of Transformers, so every claim here is the notebook's own question
(`source` ""), each quoted from its paper with the paper's setting in `where`. Our run is a 4-layer,
64-wide GPT on tiny Shakespeare characters for a few minutes of a CPU: far smaller and shorter than any
of these papers' runs, which `partial` says claim by claim.

**Has the model learned the text?** (`Learned`, this experiment's form of rule 4.) A character model
that ignores context can reach the unigram entropy of the text, 3.309 nats per character for tiny
Shakespeare's training split, and a bigram model about 2.49. Until the baseline (Pre-LN with LayerNorm)
ends at least `LEARNED_MARGIN` = 1 nat below the unigram entropy — so below the bigram, using more than
the previous character — every claim about a trained model is **inconclusive at this scale**, whatever
its interval says. Rule 1 for each arm: a validation loss within 0.1 nats of the unigram entropy is
an arm that never learned (`text_chance`).

Equality claims ("matches", "comparable") are judged with a margin of `MATCH` = 0.03 nats per
character (about 1.5% of a trained model's loss): supported when the paired 95% interval lies inside
±0.03, contradicted when it lies outside.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...stats import summarize
from . import Arm, Chance, Claim, compare, metric, relative

UNIGRAM_ENTROPY = 3.309  # nats per character of tiny Shakespeare's training split (tests/test_transformer_norms.py)
LEARNED_MARGIN = 1.0
MATCH = 0.03


@dataclass(frozen=True)
class Learned:
    """Rule 4 for a language model: the baseline's validation loss (`metric`) must end `margin` nats per
    character below the text's unigram entropy (the record's `unigram_entropy`)."""

    metric: str
    label: str
    margin: float = LEARNED_MARGIN

    def reason(self, record: dict) -> str | None:
        if self.metric not in record["summary"] or "unigram_entropy" not in record["summary"]:
            return f"the record has no {self.metric!r}, the baseline that says whether its models learned the text"
        s, h = summarize(metric(self.metric)(record)), summarize(metric("unigram_entropy")(record)).mean
        if s.mean is not None and s.mean <= h - self.margin:
            return None
        return (f"the baseline, {self.label}, ended at {s.format(3)} nats/char, not {self.margin:g} nat below the "
                f"text's unigram entropy ({h:.3f}): the models have not yet learned the text")


def text_chance(name: str) -> Chance:
    """Rule 1: a validation loss within 0.1 nats of the unigram entropy (a model that ignores context)."""
    return Chance(metric(name), UNIGRAM_ENTROPY, 0.1, "validation loss (nats/char)")


def loss_arm(label: str, unit: str) -> Arm:
    return Arm(label, metric(f"val_loss/{unit}"), text_chance(f"val_loss/{unit}"))


LEARNED = Learned("val_loss/pre-ln", "Pre-LN with LayerNorm")
PRE, POST, PERI = loss_arm("Pre-LN", "pre-ln"), loss_arm("Post-LN", "post-ln"), loss_arm("Peri-LN", "peri-ln")
POST_COLD = Arm("Post-LN without warm-up", metric("val_loss/post-ln@no-warmup"))  # its failing is the claim
PRE_COLD = loss_arm("Pre-LN without warm-up", "pre-ln@no-warmup")
RMS, DYT, DERF = loss_arm("RMSNorm", "pre-rms"), loss_arm("DyT", "pre-dyt"), loss_arm("Derf", "pre-derf")
SCALE = ("a 4-layer, 64-wide character-level GPT, a few minutes of a CPU (the cpu record's config says how many "
         "steps); ")

XIONG = ("Xiong et al. 2020, On Layer Normalization in the Transformer Architecture (ICML), abstract; Transformer "
         "translation (IWSLT14 De-En, WMT14 En-De) and BERT pre-training")
ZHANG = ("Zhang & Sennrich 2019, Root Mean Square Layer Normalization (NeurIPS), abstract; RNN and Transformer "
         "translation, CNN and RNN models on several tasks, running time on GPUs")
ZHU = ("Zhu, Chen, He, LeCun & Liu 2025, Transformers without Normalization (CVPR), abstract; ViT, ConvNeXt, DiT, "
       "wav2vec 2.0, DNA models and LLaMA 7B-70B, DyT in place of each LayerNorm / RMSNorm")
CHEN = ("Chen, Lu, Zhu, Sun & Liu 2025, Stronger Normalization-Free Transformers, abstract; ViT, DiT, wav2vec 2.0, "
        "DNA models and GPT-2 on OpenWebText")
WORTSMAN = ("Wortsman et al. 2023, Small-scale proxies for large-scale Transformer training instabilities, abstract; "
            "Pre-LN decoders of 10M-1B parameters on C4, learning rates 3e-4 to 3e-1, qk-layernorm")
KIM = ("Kim et al. 2025, Peri-LN: Revisiting Normalization Layer in the Transformer Architecture (ICML), abstract; "
       "decoders of 400M to 3.2B parameters pre-trained on 30B tokens")

CLAIMS = [
    Claim("", XIONG, "The warm-up stage is practically helpful for avoiding this problem",
          "Post-LN's validation loss without warm-up above its loss with warm-up",
          compare(POST_COLD, POST, kind="loss"),
          partial=SCALE + "a linear warm-up over a tenth of the run, AdamW with β2 = 0.95, no gradient clipping",
          trained=LEARNED, part="Post-LN needs warm-up"),
    Claim("", XIONG, "Pre-LN Transformers without the warm-up stage can reach comparable results with baselines",
          f"Pre-LN's validation loss without warm-up within {MATCH} nats/char of its loss with warm-up",
          compare(PRE_COLD, PRE, direction="equal", margin=MATCH, kind="loss"),
          partial=SCALE + "the baseline is Pre-LN with warm-up, in the same short schedule", trained=LEARNED,
          part="Pre-LN does not"),
    Claim("", ZHANG, "RMSNorm achieves comparable performance against LayerNorm",
          f"RMSNorm's validation loss within {MATCH} nats/char of LayerNorm's (Pre-LN)",
          compare(RMS, PRE, direction="equal", margin=MATCH, kind="loss"), partial=SCALE, trained=LEARNED,
          part="comparable"),
    Claim("", ZHANG, "reduces the running time by 7%~64% on different models",
          "RMSNorm's training tokens/s above LayerNorm's, in the same process",
          relative(Arm("RMSNorm", metric("tokens_per_s/pre-rms")), Arm("LayerNorm", metric("tokens_per_s/pre-ln")),
                   direction="higher", margin=0.0),
          partial="eager PyTorch on a CPU, where the norms are a small share of a step (the paper: RNNs and "
                  "Transformers on GPUs); runs timed one after another, so other work on the machine adds noise",
          untrained="a running time needs no trained model", part="faster"),
    Claim("", ZHU, "Transformers without normalization can match or exceed the performance of their normalized "
          "counterparts", f"DyT's validation loss within {MATCH} nats/char of LayerNorm's (Pre-LN)",
          compare(DYT, PRE, direction="equal", margin=MATCH, kind="loss"),
          partial=SCALE + "DyT with the Derf authors' GPT-2 embedding scale, α initialized to 0.5, not tuned",
          trained=LEARNED),
    *(Claim("", CHEN, "Derf outperforms LayerNorm, RMSNorm, and DyT", f"Derf's validation loss below {name}'s",
            compare(DERF, arm, direction="lower", kind="loss"),
            partial=SCALE + "α initialized to 0.5 in every layer (the authors set it per layer type for GPT-2)",
            trained=LEARNED, part=f"beats {name}") for name, arm in (("LayerNorm", PRE), ("RMSNorm", RMS),
                                                                    ("DyT", DYT))),
    Claim("", WORTSMAN, "mitigations previously employed at large scales are equally effective in this regime",
          "the largest attention logit at the end of training: Pre-LN with QK-norm below Pre-LN without",
          compare(Arm("Pre-LN + QK-norm", metric("max_attn_logit/pre-ln+qk")),
                  Arm("Pre-LN", metric("max_attn_logit/pre-ln")), direction="lower", kind="loss"),
          partial=SCALE + "at the base learning rate, where the paper's logit growth appears at high ones",
          trained=LEARNED, part="QK-norm keeps attention logits from growing"),
    Claim("", WORTSMAN, "mitigations previously employed at large scales are equally effective in this regime",
          "LR sensitivity (the paper's measure) of Pre-LN with QK-norm below Pre-LN's, over the sweep's rates",
          compare(Arm("Pre-LN + QK-norm", metric("lr_sensitivity/pre-ln+qk")),
                  Arm("Pre-LN", metric("lr_sensitivity/pre-ln")), direction="lower", kind="loss"),
          partial=SCALE + "three learning rates on one seed (the paper: a dozen rates); one seed has no interval",
          trained=LEARNED, part="QK-norm lowers LR sensitivity"),
    Claim("", KIM, "Peri-LN consistently achieves more balanced variance growth",
          "the residual stream's RMS growth from the first block to the last: Peri-LN below Pre-LN",
          compare(Arm("Peri-LN", metric("rms_growth/peri-ln")), Arm("Pre-LN", metric("rms_growth/pre-ln")),
                  direction="lower", kind="ratio"),
          partial=SCALE + "4 blocks (the paper: 16 to 32 layers), RMS on one validation batch at the end",
          trained=LEARNED),
]
