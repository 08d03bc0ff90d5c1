#!/usr/bin/env bash
# Sets up convsep on a fresh machine: system packages (ffmpeg, a General MIDI SoundFont),
# a virtual environment in .venv with the CPU build of torch, and convsep with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
# tinysoundfont (the corpus's renderer) declares pyaudio, which pip builds against PortAudio.
[ -f /usr/include/portaudio.h ] || need_apt+=(portaudio19-dev)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
# Headless Chromium and its driver for the web app's end-to-end test (CONVSEP_BROWSER=0 skips them).
if [ "${CONVSEP_BROWSER:-1}" != 0 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
fi
# More instrument banks for the varied synthetic corpus (optional: `convsep synth` names what is
# missing and uses the rest); CONVSEP_SYNTH_BANKS=0 skips them.
if [ "${CONVSEP_SYNTH_BANKS:-1}" != 0 ]; then
  [ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || [ -f /usr/share/sounds/sf3/MuseScore_General_Full.sf3 ] \
    || need_apt+=(musescore-general-soundfont-small)
  [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || need_apt+=(timgm6mb-soundfont)
  [ -f /usr/share/sounds/sf2/sf_GMbank.sf2 ] || need_apt+=(csound-soundfont)
  [ -f /usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2 ] || need_apt+=(avldrums.lv2-soundfont)
  [ -d /usr/share/hydrogen/data/drumkits ] || need_apt+=(hydrogen-drumkits)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: warning: please install ${need_apt[*]} (needed for mp4/m4a input and the synthetic corpus)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# A plain `pip install torch` pulls a multi-GB CUDA build; take the CPU build unless a torch is present.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
"$PY" -m pip install -q -e ".[dev]"
echo "setup: done ($("$PY" -c 'import torch, convsep; print("torch", torch.__version__, "convsep", convsep.__version__)'))"
