"""convsep.io.filesafety under real conditions: a second process racing for the same track
folder, stale temporaries of dead processes, a full disk (small tmpfs) and read-only
folders, output paths kept inside their folder."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsep.api import output_paths
from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.io.filesafety import FolderClaim, commit_file, remove_stale_folders, remove_stale_temporaries

RATE = 44100


CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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


# Another process holding a folder's claim the way FolderClaim does (flock on .convsep.lock,
# its pid inside), without importing torch, so that it starts in milliseconds.
HOLD_LOCK = ("import fcntl, os, sys, time; fd = os.open(os.path.join({folder!r}, '.convsep.lock'), os.O_RDWR | os.O_CREAT);"
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); os.write(fd, str(os.getpid()).encode());"
             "print('held', flush=True);")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name or p.name == ".convsep.lock")


# -- paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("track", ["..", ".", "a/../../b", "/abs", "x\0y"])
def test_track_names_that_would_leave_the_output_folder_are_refused(tmp_path, track):
    with pytest.raises(ConvSepError):
        output_paths(tmp_path / "in.wav", tmp_path / "out", ["vocals"], "wav", track=track)


@pytest.mark.parametrize("name", ["...wav", "..wav"])
def test_input_names_that_would_leave_the_output_folder_are_refused(tmp_path, name):
    with pytest.raises(ConvSepError):
        output_paths(tmp_path / name, tmp_path / "out", ["vocals"], "wav")


def test_input_named_dot_dot_writes_inside_the_output_folder(tmp_path, capsys, model_file):
    song = write_song(tmp_path / "in" / "...wav", 0.5)     # its track name is ".."
    code = main(["separate", str(song), "-m", str(model_file), "-o", str(tmp_path / "out" / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be used as a file or folder name" in err
    assert not list((tmp_path / "out").rglob("*.wav"))
    assert not list(tmp_path.glob("*.wav"))


@pytest.mark.parametrize("stem", ["../x", "/x", "a/b", ".."])
def test_stem_names_are_single_components(tmp_path, stem):
    with pytest.raises(ConvSepError):
        output_paths(tmp_path / "in.wav", tmp_path / "out", [stem], "wav")


# -- concurrent runs ----------------------------------------------------------------------
def test_two_concurrent_runs_exactly_one_wins_and_its_stems_are_intact(tmp_path, model_file):
    """Two real processes separate different songs with the same track name into one folder."""
    songs = [write_song(tmp_path / f"in{i}" / "song.wav", 3.0, seed=i) for i in range(2)]
    out = tmp_path / "out"
    procs = [convsep_process("separate", song, "-m", model_file, "-o", out, "--threads", "1",
                             "--no-progress") for song in songs]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[2] == 2)
    assert "another convsep run is writing" in loser[1] or "exists; pass --overwrite" in loser[1], loser[1]
    assert len(loser[1].strip().splitlines()) == 1 and "Traceback" not in loser[1]
    winner = songs[[r[2] for r in results].index(0)]
    mixture = sf.read(str(winner), always_2d=True)[0]
    total = sum(sf.read(str(out / "song" / f"{s}.wav"), always_2d=True)[0]
                for s in ("vocals", "drums", "bass", "other"))
    assert np.abs(total - mixture).max() < 4 / 32768       # the stems are the winner's, whole
    assert leftovers(out) == []


def test_a_run_on_a_folder_claimed_by_another_process_is_refused(tmp_path, model_file, capsys):
    folder = tmp_path / "out" / "song"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(folder=str(folder)) + "sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["separate", str(write_song(tmp_path / "song.wav", 0.5)), "-m", str(model_file),
                     "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and f"pid {holder.pid}" in err and "another convsep run" in err
        assert not list(folder.glob("*.wav"))
    finally:
        holder.communicate("", timeout=30)
    # Released when the holder ended: the next run goes through.
    assert main(["separate", str(tmp_path / "song.wav"), "-m", str(model_file), "-o", str(tmp_path / "out")]) == 0
    assert leftovers(tmp_path / "out") == []


def test_claim_is_released_by_the_kernel_when_the_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(folder=str(tmp_path)) + "time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ConvSepError, match="another convsep run"):
        FolderClaim(tmp_path).acquire()
    holder.kill()
    holder.wait()
    with FolderClaim(tmp_path):
        pass
    assert not (tmp_path / ".convsep.lock").exists()


def test_commit_without_overwrite_never_replaces(tmp_path):
    target, tmp = tmp_path / "vocals.wav", tmp_path / ".vocals.wav.1.tmp"
    target.write_bytes(b"first")
    tmp.write_bytes(b"second")
    with pytest.raises(ConvSepError, match="appeared while this run was writing"):
        commit_file(tmp, target, overwrite=False)
    assert target.read_bytes() == b"first"
    commit_file(tmp, target, overwrite=True)
    assert target.read_bytes() == b"second" and not tmp.exists()


def test_stale_temporaries_of_dead_processes_are_removed_by_the_next_run(tmp_path, model_file):
    folder = tmp_path / "out" / "song"
    folder.mkdir(parents=True)
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead, alive = dead_pid(), living.pid
    (folder / f".vocals.wav.{dead}.tmp").write_bytes(b"x" * 1000)
    (folder / f".bass.wav.{alive}.tmp").write_bytes(b"still being written")
    (folder / "notes.txt").write_text("mine")
    try:
        assert main(["separate", str(write_song(tmp_path / "song.wav", 0.5)), "-m", str(model_file),
                     "-o", str(tmp_path / "out")]) == 0
    finally:
        living.kill()
        living.wait()
    assert not (folder / f".vocals.wav.{dead}.tmp").exists()
    assert (folder / f".bass.wav.{alive}.tmp").exists() and (folder / "notes.txt").exists()
    assert remove_stale_temporaries(folder) == [folder / f".bass.wav.{alive}.tmp"]   # its writer is gone now


def test_stale_temporary_folders_are_removed(tmp_path):
    dead = dead_pid()
    stale = tmp_path / f"corpus.tmp-{dead}-abc"
    live = tmp_path / f"corpus.tmp-{os.getpid()}-def"
    other = tmp_path / "corpus.tmp-notapid"
    for folder in (stale, live, other):
        (folder / "train").mkdir(parents=True)
    assert remove_stale_folders(tmp_path, "corpus.tmp") == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def one_line_error(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and pattern in lines[0], err


def test_full_disk_during_separate(tmp_path, capsys, model_file, small_disk):
    disk = small_disk("1m")                  # 4 stems of 6 s at 16 bit need 4 MB
    song = write_song(tmp_path / "song.wav", 6.0)
    code = main(["separate", str(song), "-m", str(model_file), "-o", str(disk / "out")])
    one_line_error(code, capsys.readouterr().err, "no space left on the device")
    assert not list(disk.rglob("*")) or leftovers(disk) == [] and not list(disk.rglob("*.wav"))


def test_unwritable_existing_track_folder(tmp_path, capsys, model_file, small_disk):
    disk = small_disk("4m")
    (disk / "out" / "song").mkdir(parents=True)
    small_disk.read_only(disk)
    code = main(["separate", str(write_song(tmp_path / "song.wav", 0.5)), "-m", str(model_file),
                 "-o", str(disk / "out")])
    one_line_error(code, capsys.readouterr().err, "read-only file system")


def test_file_size_limit_during_separate(tmp_path, model_file):
    """The other real full-disk condition: RLIMIT_FSIZE (EFBIG) in a child process."""
    song = write_song(tmp_path / "song.wav", 6.0)
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000));"
            "from convsep.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "separate", str(song), "-m", str(model_file),
                           "-o", str(tmp_path / "out"), "--threads", "1"], capture_output=True, text=True,
                          env=CHILD_ENV, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write" in proc.stderr, proc.stderr
    assert "file too large for this file system or limit" in proc.stderr and "System error" not in proc.stderr
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


# -- links and special files -----------------------------------------------------------------
def test_track_folder_that_is_a_link_to_elsewhere_is_refused(tmp_path, capsys):
    song = write_song(tmp_path / "song.wav", 0.5)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "song").symlink_to(elsewhere)
    assert main(["separate", str(song), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "out" / "song"
    folder.mkdir(parents=True)
    (folder / ".convsep.lock").symlink_to(victim)
    with pytest.raises(ConvSepError, match="symbolic link"):
        FolderClaim(folder).acquire()
    assert victim.read_text() == "precious"


def test_special_files_are_never_replaced(tmp_path, capsys):
    from convsep.io.atomic import atomic_write_bytes, atomic_write_text

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    tmp = tmp_path / ".x.tmp"
    tmp.write_bytes(b"data")
    for overwrite in (True, False):
        with pytest.raises(ConvSepError, match="FIFO"):
            commit_file(tmp, fifo, overwrite)
    with pytest.raises(ConvSepError, match="FIFO"):
        atomic_write_bytes(fifo, b"data")
    with pytest.raises(ConvSepError, match="FIFO"):
        atomic_write_text(fifo, "data")
    assert main(["export", "-o", str(fifo), "--no-check"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == [".x.tmp", "model.onnx"]
