#!/usr/bin/env bash
# Check everything CUDA-specific in <= 6 minutes on one GPU: CUDA unit tests, benchmarks on cuda, tiny runs
# through the CLI (interrupted + --resume) and torchrun (NCCL), and each experiment's gpu preset (--record).
# Usage: scripts/gpu_check.sh [--only EXPERIMENT|tests|benchmarks]... [--out DIR] [--dry-run] [--device cpu]
# Writes one JSON summary (step, command, rc, seconds) to the path it prints. See scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" scripts/gpu_check.py "$@"
