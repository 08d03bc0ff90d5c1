"""Packaging: the corpus renderer comes with `pip install convsep[all]` (no manual --no-deps
step), a missing renderer is named with the command that installs it, and the fresh-venv
check (slow: it installs every extra) runs when CONVSEP_FRESH_INSTALL=1."""
import os
import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

from convsep.errors import ConvSepError

ROOT = Path(__file__).resolve().parents[2]


def test_all_extra_brings_the_renderer():
    reqs = requires("convsep") or []
    synth = [r for r in reqs if r.startswith("tinysoundfont") and re.search(r"extra\s*==\s*['\"]synth['\"]", r)]
    assert synth, reqs
    assert any(re.search(r"extra\s*==\s*['\"]all['\"]", r) and "synth" in r for r in reqs), reqs
    assert "--no-deps" not in (ROOT / "scripts" / "setup.sh").read_text()


def test_missing_renderer_is_one_line_with_the_install_command(monkeypatch):
    from convsep.synth import render

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)      # import fails as if not installed
    render._synth.cache_clear()
    with pytest.raises(ConvSepError, match=r"pip install 'convsep\[synth\]'") as caught:
        render.check_soundfont(render.DEFAULT_SOUNDFONT if Path(render.DEFAULT_SOUNDFONT).is_file() else __file__)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CONVSEP_FRESH_INSTALL") != "1",
                    reason="installs every extra in a fresh venv (minutes): set CONVSEP_FRESH_INSTALL=1")
def test_fresh_virtual_environment_gets_a_working_synth():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_fresh_install.sh")], capture_output=True,
                          text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "fresh install: ok" in proc.stdout
