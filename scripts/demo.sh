#!/usr/bin/env bash
# Set up (first time only) and run the end-to-end demo on built-in data (CPU, no download).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/forgetscope demo "$@"
