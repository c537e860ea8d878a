#!/usr/bin/env bash
# The accelerator benchmarks in one time-boxed command, for a GPU host that may reach no package registry. It uses
# the host's own JAX (never installs or changes it), runs the package from this checkout (PYTHONPATH, no build)
# and installs only the wheels the host lacks, made beforehand by `bash benchmarks/device_wheels.sh DIR`.
# From the repository root:
#
#   WHEELS=DIR BUDGET=420 bash benchmarks/run_device.sh       # on the GPU host; TORCH_REF=DIR adds PyTorch
#   DRY=1 BUDGET=420 bash benchmarks/run_device.sh            # the plan: each stage, its limit, its command
#   SMOKE=1 bash benchmarks/run_device.sh                     # every stage at tiny sizes on a CPU
#
# Environment:
#   BUDGET    seconds for the whole run (default 420; SMOKE 1800). Each stage has a limit (`timeout`), clipped to
#             what is left; a stage with less left than its minimum is skipped, and the summary says so.
#   OUT       output directory (default a new /tmp/run_device.*): summary.txt (one line per stage: name, rc,
#             seconds, limit, skipped), log.txt (everything), results.tgz (each stage's JSON and log; rewritten
#             after every stage, so a run stopped from outside keeps what it finished).
#   WHEELS    a directory of wheels to install with pip --no-index --no-deps --target (a temporary site);
#             WHEELS/fallback/*.whl (protobuf) too when the host's protobuf is older than grain's generated code needs.
#   TORCH_REF a directory with the official MAMP/ and STARS/ checkouts: adds compare_torch.py (when torch imports),
#             both sides in TF32, then both in strict FP32.
#   STAGES    comma-separated stage names to run (default all); PY the interpreter (default python3).
#   SMOKE=1   the CPU check of this script (JAX_PLATFORMS=cpu, configs/synthetic.py:tiny, --small probe).
#   DRY=1     prints the plan and its worst-case total (every stage at its limit, within BUDGET); runs nothing.
#
# Stages, most informative first: versions and devices; device_probe.py (cuDNN vs XLA attention, bf16 matmul
# ceiling); the MAMP step of configs/mamp.py:ntu60_xsub (bf16 with the auto attention and with xla, batch 128
# and 256, then float32); the STARS 'merged' step; memory_plan.py on the device's own memory; a short run of the
# whole main job on configs/synthetic.py; compare_torch.py.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=${DRY:-}
SMOKE=${SMOKE:-}
BUDGET=${BUDGET:-${SMOKE:+1800}}
BUDGET=${BUDGET:-420}
ONLY=${STAGES:-}
py=${PY:-python3}
T0=$SECONDS
PLANNED=0 # DRY: the seconds the stages so far take at their (clipped) limits
FAILED=0

if [ -n "$SMOKE" ]; then # seconds per stage on a CPU: the same commands at tiny sizes
  export JAX_PLATFORMS=cpu
  B1=8 B2=16 PROBE=--small MIN=5 SLOW=4 # a shared 2-core CPU compiles these 4x slower than a GPU host
  SIZES="--config=configs/synthetic.py:tiny --steps=1 --warmup=0 --host_samples=16"
  PLAN="--configs=synthetic.py:tiny --batch_sizes=4,8"
  JOB="--config=configs/synthetic.py:tiny --config.steps.stage1.pretrain.epochs=2 --config.steps.stars.stars.epochs=1"
  TORCH="--batch 2 --steps 1 --warmup 0"
else
  B1=128 B2=256 PROBE= MIN= SLOW=1
  SIZES="--steps=10 --warmup=2 --host_samples=256"
  PLAN="--configs=mamp.py:ntu60_xsub --batch_sizes=64,128"
  JOB="--config=configs/synthetic.py --config.steps.stage1.pretrain.epochs=4 --config.steps.stars.stars.epochs=1"
  JOB="$JOB $(for e in stage1 stars random_init; do printf -- '--config.steps.linear_%s.linear.epochs=1 ' $e; done)"
  TORCH="--batch 32 --steps 5 --warmup 2"
fi

summary() { # summary NAME RC SECONDS LIMIT SKIPPED: one line of summary.txt
  local line
  line=$(printf 'stage=%-16s rc=%-3s seconds=%-4s limit=%-4s skipped=%s' "$1" "$2" "$3" "$4" "$5")
  echo "$line"
  [ -n "$DRY" ] || echo "$line" >>"$OUT/summary.txt"
}

# stage NAME LIMIT MINIMUM CMD...: CMD under `timeout` (the limit clipped to what is left of BUDGET), its output
# in NAME.log, one summary line; skipped when less than MINIMUM seconds are left (SMOKE: $MIN, the limit x $SLOW).
stage() {
  local name=$1 limit=$(($2 * SLOW)) minimum=${MIN:-$3} left t start rc
  shift 3
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
  if [ -n "$DRY" ]; then left=$((BUDGET - PLANNED)); else left=$((BUDGET - (SECONDS - T0))); fi
  if [ "$left" -lt "$minimum" ]; then
    summary "$name" - 0 "$limit" "yes (${left}s left${DRY:+ if all before run to their limits}, needs ${minimum}s)"
    return
  fi
  t=$((limit < left ? limit : left))
  if [ -n "$DRY" ]; then
    PLANNED=$((PLANNED + t))
    echo "DRY $name limit ${t}s: $*"
    return
  fi
  echo "== $name (limit ${t}s): $*"
  start=$SECONDS
  timeout -k 5 "$t" "$@" >"$RES/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
  summary "$name" "$rc" $((SECONDS - start)) "$t" "no$([ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo ' (timed out)')"
  grep -E 'ms/step|TFLOP/s|cuDNN|largest batch|^\||Wrote .*results.json|Error|error:' "$RES/$name.log" | tail -8
  tar -czf "$OUT/results.tgz" -C "$WORK" results
}

setup() { # the host's JAX, the carried wheels in a temporary site, this checkout first on the path
  if [ -n "${WHEELS:-}" ]; then
    $py -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl || exit 3
    export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
    # grain's generated protobuf code needs protobuf >= 5.28.3; some images carry an older one.
    if ! $py -c 'import sys, google.protobuf as p; sys.exit(tuple(map(int, p.__version__.split(".")[:3])) < (5, 28, 3))'
    then
      $py -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/fallback/*.whl || exit 3
    fi
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=1
  # GEMM / fusion autotuning results shared by the processes below (the same shapes recur).
  [ -n "$SMOKE" ] || export XLA_FLAGS="--xla_gpu_per_fusion_autotune_cache_dir=$WORK/xla_autotune ${XLA_FLAGS:-}"
  $py -c 'import importlib.util as u, sys
missing = [m for m in ("jax", "grain", "ml_collections", "tensorboardX", "stars_jax") if u.find_spec(m) is None]
sys.exit(f"not importable: {missing} (WHEELS=DIR from benchmarks/device_wheels.sh?)" if missing else 0)' || exit 4
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || true
}

stages() {
  local bench="$py benchmarks/pretrain_throughput.py $SIZES" has_torch=
  stage versions 60 20 $py benchmarks/versions.py --out="$RES/versions.json"
  stage device_probe 90 45 $py benchmarks/device_probe.py $PROBE --out="$RES/device_probe.json"
  # The first MAMP run also times the on-device augmentation and the host input pipeline; the others the step.
  stage mamp_b${B1}_auto 100 60 $bench --batch_size=$B1 --out="$RES/mamp_b${B1}_auto.json"
  stage mamp_b${B1}_xla 80 50 $bench --step_only --batch_size=$B1 --attention_impl=xla --out="$RES/mamp_b${B1}_xla.json"
  stage mamp_b${B2}_auto 80 50 $bench --step_only --batch_size=$B2 --out="$RES/mamp_b${B2}_auto.json"
  stage mamp_b${B2}_xla 80 50 $bench --step_only --batch_size=$B2 --attention_impl=xla --out="$RES/mamp_b${B2}_xla.json"
  stage mamp_b${B1}_f32 80 50 $bench --step_only --batch_size=$B1 --compute_dtype=float32 \
    --out="$RES/mamp_b${B1}_f32.json"
  # STARS 'merged' (configs/stars.py:ntu60_xsub_merged; SMOKE: the tiny config's stars group).
  stage stars_b${B1}_auto 80 50 $bench --stage=stars --step_only --batch_size=$B1 --out="$RES/stars_b${B1}_auto.json"
  # --device_gib=0: the device's own memory (memory_stats' bytes_limit).
  stage memory_plan 90 60 $py benchmarks/memory_plan.py $PLAN --remat=false --attention_impl=auto --device_gib=0 \
    --out="$RES/memory_plan.json"
  stage main_synthetic 240 90 $py -m stars_jax.main $JOB --workdir="$WORK/main" \
    --config.data.synthetic.dir="$WORK/synthetic_data"
  [ -n "$DRY" ] || cp "$WORK/main/results.json" "$RES/main_synthetic.json" 2>/dev/null || true
  if [ -n "${TORCH_REF:-}" ] && $py -c 'import torch' 2>/dev/null; then has_torch=1; fi
  if [ -n "$has_torch" ]; then
    local compare="$py benchmarks/compare_torch.py --torch-reference $TORCH_REF $TORCH"
    stage torch_tf32 180 90 $compare --precision tf32 --out "$RES/compare_torch_tf32.json"
    stage torch_fp32 150 90 $compare --precision fp32 --runs ours-float32 torch-float32 \
      --out "$RES/compare_torch_fp32.json"
  elif [ -n "${TORCH_REF:-}" ]; then
    summary compare_torch - 0 0 "yes (torch does not import)"
  fi
}

if [ -n "$DRY" ]; then
  WORK='$WORK' RES='$WORK/results' # shown as such in the commands
  [ -z "${WHEELS:-}" ] || echo "DRY setup: $py -m pip install --no-index --no-deps --target \$WORK/site $WHEELS/*.whl"
  stages
  echo "DRY total ${PLANNED}s of budget ${BUDGET}s (every stage at its limit)"
  exit 0
fi

OUT=${OUT:-$(mktemp -d /tmp/run_device.XXXXXX)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/run_device_work.XXXXXX")
RES=$WORK/results
mkdir -p "$OUT" "$RES"
: >"$OUT/summary.txt"
trap 'rm -rf "$WORK"' EXIT
{
  setup
  stages
  tar -czf "$OUT/results.tgz" -C "$WORK" results
  echo "total $((SECONDS - T0))s of budget ${BUDGET}s; $FAILED stage(s) failed; wrote $OUT"
  exit $((FAILED > 0))
} 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
