#!/usr/bin/env bash
# The one call of a GPU window (a machine with no network): install the wheels carried in .whl/
# (scripts/build_wheelhouse.py builds them here) into /tmp/site when the packages are missing,
# then run every section of benchmarks/gpu_window.py within its deadline. Arguments go to it.
# Device tool: carry [".whl"], command `bash scripts/gpu_window.sh --out "$OUT"`.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! "$py" -c "import mujoco.mjx, mujoco_playground, brax, flashbax, tensorboardX" 2>/dev/null; then
  site=${WHEEL_SITE:-/tmp/site}
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec "$py" -m benchmarks.gpu_window "$@"
