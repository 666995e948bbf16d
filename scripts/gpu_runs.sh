#!/usr/bin/env bash
# The gpu-scale session plan, written by scripts/gpu_plan.py on 2026-12-02 from dry runs on cpu
# (at most 8 images per dry step). The minutes are ESTIMATES: the dry run's projection on cpu / 1000,
# at least 5 ms per step; budget 12 min, start-up 2 min, 0.25 min per command.
# Per-seed estimates:
#   bn_gn_batch_size             dry run    7.2 s | projected here    1619.6 min/seed | estimated GPU   106.8 min/seed | peak 0.57 GiB (peak RSS of the whole process (CPU))
#   gan_weight_norm_cifar        dry run    3.8 s | projected here    6660.5 min/seed | estimated GPU    15.1 min/seed | peak 0.68 GiB (peak RSS of the whole process (CPU))
#   loss_landscape_norms         dry run   95.7 s | projected here   87065.8 min/seed | estimated GPU    87.3 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   lr_range_test_resnet18       dry run    5.8 s | projected here      74.1 min/seed | estimated GPU     0.1 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   norm_zoo_cifar               dry run    0.0 s | projected here   17002.9 min/seed | estimated GPU    47.6 min/seed | peak 0.87 GiB (peak RSS of the whole process (CPU))
#   norm_zoo_small_cnn           dry run   17.1 s | projected here   17943.2 min/seed | estimated GPU   448.7 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   one_cycle_fast_resnet        dry run    9.2 s | projected here     622.7 min/seed | estimated GPU     0.6 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   switch_norm_cifar            dry run   29.6 s | projected here    2845.7 min/seed | estimated GPU     4.1 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   weight_norm_cifar            dry run    6.7 s | projected here    1389.9 min/seed | estimated GPU    13.0 min/seed | peak 1.34 GiB (peak RSS of the whole process (CPU))
#   ws_bcn_vgg                   dry run   64.7 s | projected here   11107.7 min/seed | estimated GPU    11.3 min/seed | peak 1.83 GiB (peak RSS of the whole process (CPU))
#   ws_small_batches             dry run   21.2 s | projected here    5325.6 min/seed | estimated GPU    43.8 min/seed | peak 1.83 GiB (peak RSS of the whole process (CPU))
set -u
cd "$(dirname "$0")/.."
DEADLINE=$(( 720 ))  # seconds for the whole session, start-up included
left() { echo $(( DEADLINE - SECONDS )); }
step() {  # step SECONDS COMMAND...: run with a timeout that never passes the deadline
  local t=$1; shift; local l; l=$(left); (( l < t )) && t=$l
  if (( t <= 10 )); then echo "skipped (no time left): $*"; return; fi
  echo "== $* (timeout ${t}s)"; timeout "$t" "$@" || echo "stopped or failed ($?): $*"
}
# Start-up, estimated 2.0 min: CUDA init, CIFAR-10 decoded once (then cached); labnorm from
# this checkout (no install: the machine may have no network). $LABNORM_DATA: a folder with the archive.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 python -c 'import torch, labnorm; assert torch.cuda.is_available(), "no GPU"; labnorm.load_cifar10("train"); print(torch.cuda.get_device_name())' || { echo "no GPU or no data"; exit 1; }
# lr_range_test_resnet18: 3 seed(s), estimated 0.5 min (records are saved after each seed)
step 43 python -m labnorm run lr_range_test_resnet18 --scale gpu --seeds 3
# benchmark, estimated 1.2 min (a guess, not a dry-run projection)
step 113 python benchmarks/bench_training.py --device cuda
# benchmark, estimated 2.2 min (a guess, not a dry-run projection)
step 203 python benchmarks/bench_norms.py --device cuda
# one_cycle_fast_resnet: 3 seed(s), estimated 2.1 min (records are saved after each seed)
step 191 python -m labnorm run one_cycle_fast_resnet --scale gpu --seeds 3
# does not fit: switch_norm_cifar, estimated 4.3 min per seed
# does not fit: ws_bcn_vgg, estimated 11.5 min per seed
# does not fit: weight_norm_cifar, estimated 13.3 min per seed
# does not fit: gan_weight_norm_cifar, estimated 15.4 min per seed
# does not fit: ws_small_batches, estimated 44.0 min per seed
# does not fit: norm_zoo_cifar, estimated 47.9 min per seed
# does not fit: loss_landscape_norms, estimated 87.5 min per seed
# does not fit: bn_gn_batch_size, estimated 107.0 min per seed
# does not fit: norm_zoo_small_cnn, estimated 448.9 min per seed
echo "done in ${SECONDS}s; commit results/*__gpu.json and benchmarks/results/*__cuda.json"
