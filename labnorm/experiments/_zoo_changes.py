"""How the grand comparison's (`norm_zoo_cifar`) cpu config changed while its record was made, and why.

The record keeps these notes in its config (`Config.changes`) and its report prints them: each change kept the runs
it replaced as ablation units of the record, so none was lost.
"""

CHANGES = ("Batch Renorm at momentum 0.1: at the paper's 0.01 it tested at chance on every seed; those "
           "runs stay as unit brn/b1024@no-warmup+div-only.",
           "the learning-rate rule capped at BN's rate: the uncapped ratio gave BCN and GN 2.0-2.3x BN's "
           "rate, where they stayed near chance for most of training. Their runs and those of the other norms the cap "
           "changes (WS+BN, SN) became the @uncapped ablation units, rerun under the cap; runs it leaves alone kept.",
           "WS+BCN and WN + mean-only BN added, the two norms of the registry the grid lacked.",
           "Batch Renorm with the paper's warm-up compressed into the run: its runs without it became @no-warmup units.",
           "WN with its data-dependent init added (the extra unit wn/b1024@data-init), to test notebook 02's claims "
           "on a trained net.",
           "the rule's lowest-point piece: at BN's rate GN's training loss sat at ln 10 for most of the run (41.5%, "
           "25.0%, 29.3%), its range test's lowest point 8x sooner than BN's; at 1/4 and 1/8 of BN's rate it reached "
           "68.3% and 68.7% (seed 0, benchmarks/results/fast_frontier__cpu.json). The runs the piece changes (GN, WS+GN, "
           "Batch Renorm) became @div-only ablation units, Batch Renorm's no-warm-up units @no-warmup+div-only.",
           "FRN tested at chance on every seed: its gradients at init reach ~1e10 in this net, whose Dirac init hands on "
           "channels that FRN's TLU zeroed to the next FRN, which divides them by sqrt(eps). The extra unit "
           "frn/b1024@no-dirac trains it without the Dirac init (range test on that net too); its @shared-lr ablation, "
           "the same blow-up at BN's rate, was dropped before it ran.",
           "WN's convs given the net's Dirac init too (through the reparametrization: v = w, g = ||w||), so that WN and WN "
           "+ mean-only BN start from the same function as the plain net. Without it their signal fell ~3000x by the "
           "logits (std 3e-5 against 0.097) and they stayed at ln 10 on every seed (10.0%); those runs became the "
           "@no-dirac units. With it, WN's range test blew up at a 75th of BN's point (rate 0.020), so the extra unit "
           "wn/b1024@data-init takes its rate from a range test with the data-dependent init, before it ran.")
