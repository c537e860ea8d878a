#!/usr/bin/env bash
# Every accelerator benchmark in one command (about 10 minutes on one H100); JSON lands in benchmarks/results/
# named by device, config, batch and dtype. Usage, from the repository root on a GPU host:
#
#   pip install "jax[cuda12]==0.10.2" && pip install -e .
#   bash benchmarks/run_gpu.sh [DIR_WITH_OFFICIAL_MAMP_AND_STARS_CHECKOUTS]
#
# With the directory (and `pip install .[torch]`), the side-by-side PyTorch comparison runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
bench="python benchmarks/pretrain_throughput.py"

# MAMP pretraining step, official NTU-60 XSub model: bf16 (the default on GPU), attention implementations, f32.
$bench --batch_size=128
$bench --batch_size=128 --attention_impl=cudnn
$bench --batch_size=256 --attention_impl=cudnn
$bench --batch_size=128 --compute_dtype=float32
# Rematerialisation and the wider FSDP config (width 512, depth 12).
$bench --batch_size=256 --attention_impl=cudnn --remat
$bench --config=configs/mamp.py:ntu60_xsub_wide --batch_size=128 --attention_impl=cudnn
# Memory per clip and the largest batch per device (XLA's buffer plan of the compiled step).
python benchmarks/memory_plan.py --batch_sizes=64,128 --device_gib=80
# Against the official PyTorch step on the same GPU (MAMP and STARS), float32 both, our bf16 beside.
if [ $# -ge 1 ]; then
  python benchmarks/compare_torch.py --torch-reference "$1" --batch 32 --steps 10 --warmup 3
fi
