#!/usr/bin/env bash
# Checks that a wheel built from the repository, installed without -e as `pip install WHEEL[all]`
# in a fresh virtual environment, gives a working `convsep synth`, `convsep separate`,
# `convsep demo` and `convsep export`: the dependencies and extras resolve, and the wheel carries
# the bundled models, the demo song and the corpus data (an editable install would find them in
# the checkout and hide a gap in the package data). Takes minutes (it installs every extra), so it
# is not part of `make test` (tests/packaging/test_wheel.py checks the wheel itself there, offline);
# run it after changing dependencies or package data: `bash scripts/check_fresh_install.sh`
# (or `CONVSEP_FRESH_INSTALL=1 pytest tests/packaging/test_extras.py`).
# System packages are the ones scripts/setup.sh installs (ffmpeg, fluid-soundfont-gm, portaudio19-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/convsep-fresh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PYTHON=${PYTHON:-python3}

"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
CONVSEP="$WORK/venv/bin/convsep"
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# The CPU build of torch first, as scripts/setup.sh does (a plain install pulls the CUDA build).
"$PY" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"

# The wheel is built from a copy of the files git knows (committed or not, ignored ones left out),
# so a build/ folder left in the checkout cannot add files the package data would miss.
SOURCE=.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  SOURCE="$WORK/source"
  mkdir -p "$SOURCE"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done \
    | xargs -0 cp --parents -t "$SOURCE"
fi
"$PY" -m pip wheel -q --no-deps -w "$WORK/wheels" "$SOURCE"
WHEEL=$(find "$WORK/wheels" -name 'convsep-*.whl' | head -n 1)
[ -n "$WHEEL" ] || { echo "fresh install: pip wheel built no convsep wheel" >&2; exit 1; }
"$PY" -m pip install -q "$WHEEL[all]"
"$PY" -m pip check

cd "$WORK"   # outside the checkout: convsep can only come from the installed wheel
module=$("$PY" -c 'import convsep; print(convsep.__file__)')
case "$module" in
  "$WORK/venv/"*) ;;
  *) echo "fresh install: convsep imported from $module, not from the installed wheel" >&2; exit 1 ;;
esac

"$CONVSEP" info >/dev/null
"$CONVSEP" synth "$WORK/corpus" --preset tiny --seconds 2 --quiet
mixture=$(find "$WORK/corpus/test" -name mixture.wav | sort | head -n 1)
[ -n "$mixture" ] || { echo "fresh install: synth wrote no test track" >&2; exit 1; }
"$CONVSEP" separate "$mixture" -o "$WORK/separated" --no-progress --threads 1
[ "$(find "$WORK/separated" -name '*.wav' | wc -l)" -eq 4 ] || { echo "fresh install: separate wrote no stems" >&2; exit 1; }
"$CONVSEP" demo -o "$WORK/demo" >/dev/null
[ "$(find "$WORK/demo" -name '*.wav' | wc -l)" -eq 5 ] || { echo "fresh install: demo wrote no stems" >&2; exit 1; }
"$CONVSEP" export -o "$WORK/default.onnx" >/dev/null
echo "fresh install: ok (pip install WHEEL[all] alone, not editable: synth, separate, demo and export work)"
