"""convsep.runtime.os_signals: real SIGTERM/SIGHUP mid-run leave no temporaries and run the
command's cleanup."""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.models import ConvSep, preset
from convsep.models.modelfile import save_model

RATE = 44100


CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def slow_model_file(tmp_path_factory):
    """A model with a block on every frame (15x the work per second): runs stay busy for
    seconds on short inputs, long enough to be stopped mid-separation on any machine."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "slow.pt"
    save_model(path, ConvSep(preset("convsep-stereo", block_hop=1)))
    return path


def write_song(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    audio = 0.2 * np.sin(2 * np.pi * (200 + 50 * seed) * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), RATE, subtype="PCM_16", format="WAV")
    return path


def convsep_process(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "convsep", *map(str, args)], env=CHILD_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name or p.name == ".convsep.lock")


# -- signals and stale temporaries ------------------------------------------------------
@pytest.mark.parametrize("sig,jobs", [(signal.SIGTERM, 1), (signal.SIGTERM, 2)])
def test_signal_mid_separation_leaves_no_temporary(tmp_path, slow_model_file, sig, jobs):
    songs = [write_song(tmp_path / "in" / f"long{i}.wav", 30.0, seed=i) for i in range(jobs)]
    out = tmp_path / "out"
    proc = convsep_process("separate", *songs, "-m", slow_model_file, "-o", out, "--jobs", jobs,
                           "--threads", "1", "--no-progress")
    deadline = time.monotonic() + 120
    while len(list(out.rglob(".*.tmp"))) < 4 * jobs and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.2)                         # mid-separation, temporaries being written
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert leftovers(out) == [] and not list(out.rglob("*.wav"))
    assert not out.exists()                 # the run created OUTDIR: it removes it again


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_signal_during_a_command_runs_its_cleanup(tmp_path, capsys, sig):
    """In-process: a real signal to this process while a command runs becomes a clean stop
    (``finally`` blocks run), exit code 128 + N, and the previous handlers come back."""
    from convsep.cli.failures import run_command

    inherited = signal.signal(sig, signal.SIG_DFL)   # under nohup SIGHUP comes ignored, and stays so
    before = signal.getsignal(sig)
    marker = tmp_path / ".x.wav.1.tmp"

    def command(args):
        marker.write_bytes(b"partial")
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)
            return 0
        finally:
            marker.unlink()

    try:
        assert run_command(argparse.Namespace(command="test", func=command)) == 128 + sig
        assert not marker.exists() and f"stopped by {signal.Signals(sig).name}" in capsys.readouterr().err
        assert signal.getsignal(sig) == before
    finally:
        signal.signal(sig, inherited)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _processes_writing(out: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and str(out).encode() in Path(f"/proc/{entry}/cmdline").read_bytes() and _running(int(entry)):
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_stop_when_their_parent_is_killed(tmp_path, slow_model_file):
    """kill -9 of `separate --jobs 2`: the workers stop too (removing their temporaries)
    instead of finishing, committing stems after the kill and idling as orphans."""
    songs = [write_song(tmp_path / "in" / f"long{i}.wav", 30.0, seed=i) for i in range(2)]
    out = tmp_path / "out"
    proc = convsep_process("separate", *songs, "-m", slow_model_file, "-o", out, "--jobs", 2,
                           "--threads", "1", "--no-progress")
    deadline = time.monotonic() + 120
    while len(list(out.rglob(".*.tmp"))) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    workers = _children(proc.pid)
    try:
        assert len(workers) >= 2
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 30
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if _running(w)] == []
    finally:                                  # never leave this test's processes behind
        proc.kill()
        for pid in _processes_writing(out):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not list(out.rglob("*.wav")) and not list(out.rglob(".*.tmp"))
