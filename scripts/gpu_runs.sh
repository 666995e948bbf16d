#!/usr/bin/env bash
# The gpu-scale session plan, written by scripts/gpu_plan.py on 2026-12-02 from dry runs on cpu
# (at most 8 images per dry step). The minutes are ESTIMATES: the dry run's projection on cpu / 1000,
# at least 5 ms per step; budget 12 min, start-up 2 min, 0.25 min per command.
# Per-seed estimates:
#   bn_gn_batch_size             dry run    8.2 s | projected here    2589.3 min/seed | estimated GPU   106.8 min/seed | peak 0.56 GiB (peak RSS of the whole process (CPU))
#   gan_weight_norm_cifar        dry run    5.8 s | projected here   10591.1 min/seed | estimated GPU    16.0 min/seed | peak 0.66 GiB (peak RSS of the whole process (CPU))
#   loss_landscape_norms         dry run  113.8 s | projected here   78239.2 min/seed | estimated GPU    78.2 min/seed | peak 1.48 GiB (peak RSS of the whole process (CPU))
#   lr_range_test_resnet18       dry run   12.2 s | projected here     155.3 min/seed | estimated GPU     0.2 min/seed | peak 1.48 GiB (peak RSS of the whole process (CPU))
#   one_cycle_fast_resnet        dry run    3.4 s | projected here    1448.8 min/seed | estimated GPU     1.4 min/seed | peak 1.48 GiB (peak RSS of the whole process (CPU))
#   switch_norm_cifar            dry run   20.5 s | projected here    6891.3 min/seed | estimated GPU     6.9 min/seed | peak 1.48 GiB (peak RSS of the whole process (CPU))
#   weight_norm_cifar            dry run   12.9 s | projected here    3030.9 min/seed | estimated GPU    13.0 min/seed | peak 1.49 GiB (peak RSS of the whole process (CPU))
#   ws_bcn_vgg                   dry run  134.9 s | projected here   27080.2 min/seed | estimated GPU    27.1 min/seed | peak 1.91 GiB (peak RSS of the whole process (CPU))
#   ws_small_batches             dry run   45.4 s | projected here   12707.7 min/seed | estimated GPU    46.1 min/seed | peak 1.91 GiB (peak RSS of the whole process (CPU))
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
# lr_range_test_resnet18: 3 seed(s), estimated 0.9 min (records are saved after each seed)
step 77 python -m labnorm run lr_range_test_resnet18 --scale gpu --seeds 3
# benchmark, estimated 1.2 min (a guess, not a dry-run projection)
step 113 python benchmarks/bench_training.py --device cuda
# benchmark, estimated 2.2 min (a guess, not a dry-run projection)
step 203 python benchmarks/bench_norms.py --device cuda
# one_cycle_fast_resnet: 3 seed(s), estimated 4.4 min (records are saved after each seed)
step 401 python -m labnorm run one_cycle_fast_resnet --scale gpu --seeds 3
# does not fit: switch_norm_cifar, estimated 7.2 min per seed
# does not fit: weight_norm_cifar, estimated 13.2 min per seed
# does not fit: gan_weight_norm_cifar, estimated 16.2 min per seed
# does not fit: ws_bcn_vgg, estimated 27.4 min per seed
# does not fit: ws_small_batches, estimated 46.4 min per seed
# does not fit: loss_landscape_norms, estimated 78.5 min per seed
# does not fit: bn_gn_batch_size, estimated 107.0 min per seed
echo "done in ${SECONDS}s; commit results/*__gpu.json and benchmarks/results/*__cuda.json"
