#!/usr/bin/env bash
# Create .venv with everything sora_core needs (and, with --test, the test references).
# Idempotent: a second run only checks that the environment is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
stamp=".venv/.installed${extras}"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# constraints.txt pins torch==2.13.0 so pip never swaps in another (e.g. CUDA) build.
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}"
# imwatermark (the watermark benchmark's reference) declares opencv-python and torch: --no-deps keeps the headless
# opencv of the test extra and the pinned torch.
if [ -n "$extras" ]; then .venv/bin/python -m pip install -q --no-deps invisible-watermark==0.2.0; fi
touch "$stamp"
