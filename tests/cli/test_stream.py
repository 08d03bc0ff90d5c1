"""convsep stream: files and raw PCM pipes, aligned stems that add up to the input."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main
from convsep.separation.realtime_io import decode_pcm, encode_pcm

STEMS = ("vocals", "drums", "bass", "other")


def _audio(samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.2)
    return (tone + 0.05 * rng.standard_normal((2, samples))).astype(np.float32)


def _cli(args, stdin=None):
    return subprocess.run([sys.executable, "-m", "convsep", "stream", *args], input=stdin,
                          capture_output=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": ""})


def test_file_stems_have_the_input_length_and_add_up(tmp_path, capsys):
    x = _audio(44100 + 1234)
    sf.write(tmp_path / "song.wav", x.T, 44100, subtype="FLOAT")
    assert main(["stream", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--bits", "32f",
                 "--lookahead", "0"]) == 0
    assert "latency: 23.2 ms" in capsys.readouterr().out
    stems = [sf.read(tmp_path / "out" / "song" / f"{s}.wav", dtype="float32") for s in STEMS]
    assert all(rate == 44100 and audio.shape == x.T.shape for audio, rate in stems)
    np.testing.assert_allclose(sum(a for a, _ in stems), x.T, atol=1e-5)
    # existing outputs are kept
    assert main(["stream", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out")]) == 2
    assert "exists" in capsys.readouterr().err


def test_raw_pcm_in_and_out_and_16_bit_input(tmp_path):
    x = _audio(30000, seed=1)
    run = _cli(["-", "--stdout", "--lookahead", "1"], stdin=encode_pcm(x, "f32"))
    assert run.returncode == 0, run.stderr.decode()
    assert b"latency: 29.0 ms" in run.stderr
    stems = decode_pcm(run.stdout, "f32", 8).reshape(4, 2, -1)
    assert stems.shape[-1] == x.shape[1]
    np.testing.assert_allclose(stems.sum(0), x, atol=1e-5)
    # s16 mono at 22.05 kHz to files: resampled inside, written at the input's rate and length
    mono = np.round(x[:1, :15001] * 20000).astype("<i2")
    run = _cli(["-", "-o", str(tmp_path), "--format", "s16", "--channels", "1", "--rate", "22050",
                "--bits", "32f", "--name", "pipe"], stdin=mono.T.tobytes())
    assert run.returncode == 0, run.stderr.decode()
    vocals, rate = sf.read(tmp_path / "pipe" / "vocals.wav", dtype="float32")
    assert rate == 22050 and vocals.shape == (15001, 2)


def test_bad_input_is_a_one_line_error(tmp_path):
    run = _cli(["-", "-o", str(tmp_path)], stdin=b"\x00" * 10)      # 10 bytes: not whole frames
    assert run.returncode == 2 and b"stray bytes" in run.stderr and b"Traceback" not in run.stderr
    assert not (tmp_path / "stdin").exists()
    run = _cli(["-", "-o", str(tmp_path), "--lookahead", "40"], stdin=b"")
    assert run.returncode == 2 and b"lookahead must be between 0 and 29" in run.stderr
    run = _cli([str(tmp_path / "missing.wav")])
    assert run.returncode == 2 and b"no such file" in run.stderr


def test_live_audio_without_a_sound_device_says_so(capsys):
    pytest.importorskip("convsep.separation.realtime_io")
    code = main(["stream", "--input-device", "default", "--seconds", "0.1"])
    err = capsys.readouterr().err
    # PortAudio or a device is missing on build machines: either way one clear line
    if code != 0:    # (PortAudio's ALSA back end may print its own warnings first)
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith("convsep stream: error: ") and "Traceback" not in err
        assert "PortAudio" in last or "sounddevice" in last or "no sound" in last


@pytest.mark.parametrize("name", ["../escape", "ABSOLUTE", ".", "", "..", "a/b"])
def test_track_names_that_leave_the_output_folder_are_refused(tmp_path, capsys, name):
    name = str(tmp_path / "elsewhere") if name == "ABSOLUTE" else name
    sf.write(tmp_path / "song.wav", _audio(4410).T, 44100)
    assert main(["stream", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--name", name]) == 2
    assert "--name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]


def test_a_file_named_dots_does_not_write_next_to_the_output_folder(tmp_path, capsys):
    sf.write(tmp_path / "...wav", _audio(4410).T, 44100, format="WAV")
    assert main(["stream", str(tmp_path / "...wav"), "-o", str(tmp_path / "out")]) == 2
    assert "track name '..'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["...wav"]


def test_the_api_refuses_such_names_too(tmp_path):
    from convsep.errors import ConvSepError
    from convsep.separation.realtime import RealtimeSeparator
    from convsep.separation.realtime_io import stream_to_files

    separator = RealtimeSeparator.load(None, lookahead=0)
    for name in ("..", "../x", ""):
        with pytest.raises(ConvSepError, match="track name"):
            stream_to_files(separator, iter([_audio(4410)]), 44100, 2, tmp_path / "out", name)
    assert not (tmp_path / "out").exists()


def test_stream_claims_its_track_folder(tmp_path):
    """A second writer of the same track folder (here: a process holding its claim) stops
    stream at once, as it stops separate; nothing of the other's is replaced."""
    sf.write(tmp_path / "song.wav", _audio(44100).T, 44100)
    folder = tmp_path / "out" / "song"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(os.path.join(sys.argv[1], '.convsep.lock'), os.O_RDWR | os.O_CREAT);"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True);"
        "sys.stdin.read()"), str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        run = _cli([str(tmp_path / "song.wav"), "-o", str(tmp_path / "out")])
    finally:
        holder.communicate("")
    assert run.returncode == 2 and f"pid {holder.pid}".encode() in run.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".convsep.lock"]


def test_sigterm_leaves_no_output_folder_behind(tmp_path):
    import os
    import signal
    import time

    sf.write(tmp_path / "long.wav", _audio(44100 * 120).T, 44100)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "convsep", "stream", str(tmp_path / "long.wav"), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not list(out.rglob(".*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not out.exists()
