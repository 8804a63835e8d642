#!/usr/bin/env bash
# A separate environment with lm-evaluation-harness, for the agreement check and
# the speed benchmarks. torch is pinned in the same command: lm-eval[hf] would
# otherwise pull a newer torch with gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-lmeval}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -c .ci/constraints.txt torch==2.13.0 'lm-eval[hf]' gguf
echo "export FORGETSCOPE_LMEVAL_PYTHON=$PWD/$VENV/bin/python"
