#!/usr/bin/env bash
# Installs the peers (Open-Unmix, Demucs) into the project's virtual environment for the
# benchmarks only. Every package is installed with --no-deps so pip can never replace torch;
# the peers' pure-python dependencies used by their model classes are named explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
"$PY" -m pip install --no-deps -r benchmarks/requirements.txt
"$PY" - <<'PY'
import sys
sys.path.insert(0, "benchmarks")
from _common import use_torchaudio_stub
use_torchaudio_stub()
from openunmix.model import OpenUnmix  # noqa: F401
from demucs.htdemucs import HTDemucs    # noqa: F401
import torch
print(f"peers ready (torch {torch.__version__} untouched)")
PY
