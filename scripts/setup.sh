#!/usr/bin/env bash
# Create .venv (once) and install forgetscope with its test extras.
# torch is pinned by .ci/constraints.txt: an unpinned torch would pull
# gigabytes of CUDA wheels on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.forgetscope-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ .ci/constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
    .venv/bin/python -m pip install --quiet -c .ci/constraints.txt -e '.[dev]'
    touch "$stamp"
fi
