#!/usr/bin/env bash
# The wheels an offline GPU host with its own JAX lacks, downloaded on a machine that reaches PyPI, for
# `WHEELS=DIR bash benchmarks/run_device.sh` on that host. From the repository root:
#
#   bash benchmarks/device_wheels.sh DIR        # pip download into DIR (and DIR/fallback)
#   LIST=1 bash benchmarks/device_wheels.sh     # the packages it would fetch, name==version, and the host's own
#
# Versions: requirements.txt's pin where it has one, else the version the pinned stack resolves (grain's
# dependencies array-record and portpicker). DIR/fallback gets protobuf, installed there only when the host's is
# older than grain's generated code needs. Wheels only, no dependencies, for CPython $PYTHON_VERSION (default 3.12)
# on manylinux x86_64.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
PINNED="ml-collections grain tensorboardX" # versions from requirements.txt
RESOLVED="array-record==0.8.6 portpicker==1.6.0"
FALLBACK="protobuf==7.36.2"
# What the lent hosts carry themselves (never downloaded): the JAX stack with its CUDA plugins, and the rest of
# stars_jax's requirements.
HOST="jax jaxlib flax optax orbax-checkpoint numpy absl-py tqdm scikit-learn matplotlib"

wanted() { # name==version per line: the pinned ones from requirements.txt, then the resolved ones
  local name line
  for name in $PINNED; do
    line=$(grep -iE "^${name}==" requirements.txt) || { echo "requirements.txt pins no $name" >&2; exit 2; }
    echo "$line"
  done
  printf '%s\n' $RESOLVED
}

if [ -n "${LIST:-}" ]; then
  wanted
  echo "fallback: $FALLBACK"
  echo "host: $HOST"
  exit 0
fi
[ $# -eq 1 ] || { echo "usage: bash benchmarks/device_wheels.sh DIR" >&2; exit 2; }
download() { # download DIR REQUIREMENT...
  local dir=$1
  shift
  python3 -m pip download -q --only-binary=:all: --no-deps --dest "$dir" --python-version "$PYTHON_VERSION" \
    --implementation cp --abi "cp${PYTHON_VERSION/./}" --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any "$@"
}
mkdir -p "$1/fallback"
# shellcheck disable=SC2046  # one argument per line of `wanted`
download "$1" $(wanted)
download "$1/fallback" $FALLBACK
ls -1 "$1" "$1/fallback"
