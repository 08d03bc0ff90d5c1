#!/usr/bin/env bash
# Checks that `pip install -e ".[all]"` alone, in a fresh virtual environment, gives a working
# `convsep synth` and `convsep separate`. Takes minutes (it installs every extra), so it is not
# part of `make test`; run it after changing dependencies: `bash scripts/check_fresh_install.sh`
# (or `CONVSEP_FRESH_INSTALL=1 pytest tests/test_hardening_packaging.py`).
# System packages are the ones scripts/setup.sh installs (ffmpeg, fluid-soundfont-gm, portaudio19-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/convsep-fresh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PYTHON=${PYTHON:-python3}

"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# The CPU build of torch first, as scripts/setup.sh does (a plain install pulls the CUDA build).
"$PY" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
"$PY" -m pip install -q -e ".[all]"
"$PY" -m pip check

"$WORK/venv/bin/convsep" synth "$WORK/corpus" --preset tiny --seconds 2 --quiet
mixture=$(find "$WORK/corpus/test" -name mixture.wav | sort | head -n 1)
[ -n "$mixture" ] || { echo "fresh install: synth wrote no test track" >&2; exit 1; }
"$WORK/venv/bin/convsep" separate "$mixture" -o "$WORK/separated" --no-progress --threads 1
[ "$(find "$WORK/separated" -name '*.wav' | wc -l)" -eq 4 ] || { echo "fresh install: separate wrote no stems" >&2; exit 1; }
echo "fresh install: ok (pip install -e .[all] alone: synth and separate work)"
