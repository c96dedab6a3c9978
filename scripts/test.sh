#!/usr/bin/env bash
# Install (idempotent) and run the test suite. Extra args go to pytest, e.g. `-m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE=offline WANDB_SILENT=true HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/pytest "$@"
