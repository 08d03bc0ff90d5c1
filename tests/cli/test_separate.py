"""`convsep separate` end to end: formats, rates, channels, batches, every bad input of the
core issue, missing or damaged models."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main

RATE = 44100


def music(seconds: float, rate: int = RATE, channels: int = 2) -> np.ndarray:
    """(samples, channels) float32 test signal, band-limited below 3.5 kHz."""
    t = np.arange(int(seconds * rate)) / rate
    sig = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 3300 * t) * (t % 0.5 < 0.1)
    return np.stack([sig * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, pattern):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


def stems_of(outdir: Path, track: str, ext: str = "wav"):
    return {p.stem: sf.read(str(p), always_2d=True)[0].T for p in sorted((outdir / track).glob(f"*.{ext}"))}


@pytest.mark.parametrize("fmt,rate,channels,subtype", [
    ("wav", 44100, 2, "PCM_16"), ("wav", 48000, 1, "PCM_24"), ("wav", 96000, 2, "FLOAT"),
    ("flac", 8000, 2, "PCM_16"), ("ogg", 22050, 2, "VORBIS"), ("wav", 44100, 6, "PCM_16"),
])
def test_separate_formats_rates_and_channels(tmp_path, capsys, model_file, fmt, rate, channels, subtype):
    src = tmp_path / f"song.{fmt}"
    sf.write(str(src), music(1.5, rate, channels), rate, subtype=subtype)
    with pytest.warns(UserWarning, match="first two") if channels > 2 else _nothing():
        code, out, err = run(["separate", src, "-m", model_file, "-o", tmp_path / "out", "--bits", "32f"], capsys)
    assert code == 0, err
    stems = stems_of(tmp_path / "out", "song")
    assert sorted(stems) == ["bass", "drums", "other", "vocals"]
    mixture = sum(stems.values())
    expected_len = int(round(1.5 * RATE))
    assert all(s.shape == (2, expected_len) for s in stems.values())
    assert np.isfinite(mixture).all()
    if rate == RATE and fmt == "wav":
        original = sf.read(str(src), always_2d=True)[0].T[:2]
        assert np.abs(mixture - original).max() < 1e-4  # stems add up to the input
    assert "separated 1 of 1" in out


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_m4a_through_ffmpeg_and_keep_rate(tmp_path, capsys, model_file):
    wav = tmp_path / "x.wav"
    sf.write(str(wav), music(1.0, 48000), 48000)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    code, _, err = run(["separate", m4a, "-m", model_file, "-o", tmp_path / "out", "--keep-rate",
                        "--ext", "flac", "--bits", "24"], capsys)
    assert code == 0, err
    info = sf.info(str(tmp_path / "out" / "clip" / "vocals.flac"))
    assert info.samplerate == 48000 and info.subtype == "PCM_24"


def test_folder_batch_stems_two_stems_and_overwrite(tmp_path, capsys, model_file):
    songs = tmp_path / "songs"
    (songs / "sub").mkdir(parents=True)
    sf.write(str(songs / "a.wav"), music(1.0), RATE)
    sf.write(str(songs / "sub" / "b.flac"), music(1.2), RATE)
    (songs / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    code, stdout, err = run(["separate", songs, "-m", model_file, "-o", out, "--stems", "vocals,bass"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "a").iterdir()) == ["bass.wav", "vocals.wav"]
    assert sorted(p.name for p in (out / "b").iterdir()) == ["bass.wav", "vocals.wav"]
    assert "separated 2 of 2" in stdout
    before = (out / "a" / "vocals.wav").read_bytes()
    code, _, err = run(["separate", songs / "a.wav", "-m", model_file, "-o", out, "--two-stems", "vocals"], capsys)
    assert_one_line_error(code, err, "--overwrite")
    assert (out / "a" / "vocals.wav").read_bytes() == before
    assert not (out / "a" / "no_vocals.wav").exists()
    code, _, err = run(["separate", songs / "a.wav", "-m", model_file, "-o", out, "--two-stems", "vocals",
                        "--overwrite", "--bits", "32f"], capsys)
    assert code == 0, err
    stems = stems_of(out, "a")
    original = sf.read(str(songs / "a.wav"), always_2d=True)[0].T
    assert np.abs(stems["vocals"] + stems["no_vocals"] - original).max() < 1e-4


def test_jobs_2_gives_the_same_stems_as_jobs_1(tmp_path, capsys, model_file):
    for name in "abc":
        sf.write(str(tmp_path / f"{name}.wav"), music(1.0) * (1 + "abc".index(name)) / 3, RATE)
    files = [tmp_path / f"{n}.wav" for n in "abc"]
    assert run(["separate", *files, "-m", model_file, "-o", tmp_path / "one"], capsys)[0] == 0
    assert run(["separate", *files, "-m", model_file, "-o", tmp_path / "two", "-j", "2"], capsys)[0] == 0
    for n in "abc":
        one, two = stems_of(tmp_path / "one", n), stems_of(tmp_path / "two", n)
        assert all(np.abs(one[k] - two[k]).max() <= 2 / 32768 for k in one)  # thread counts differ


def test_clipping_is_counted_not_rescaled(tmp_path, capsys, model_file):
    loud = tmp_path / "loud.wav"
    sf.write(str(loud), np.clip(music(1.0) * 4, -1, 1), RATE, subtype="FLOAT")
    data = sf.read(str(loud), always_2d=True)[0] * 1.5  # float file above full scale
    sf.write(str(loud), data, RATE, subtype="FLOAT")
    code, _, err = run(["separate", loud, "-m", model_file, "-o", tmp_path / "out"], capsys)
    assert code == 0
    assert "clipped" in err
    code, _, err = run(["separate", loud, "-m", model_file, "-o", tmp_path / "float", "--bits", "32f"], capsys)
    assert "clipped" not in err
    total = sum(stems_of(tmp_path / "float", "loud").values())
    assert np.abs(total - data.T).max() < 1e-4 and np.abs(total).max() > 1.0


BAD_INPUTS = {
    "missing": (lambda d: d / "nope.wav", "no such file"),
    "empty dir": (lambda d: (d / "empty").mkdir() or d / "empty", "no audio files"),
    "text as wav": (lambda d: _file(d / "t.wav", b"hello, I am text"), "not a readable audio file"),
    "zero bytes": (lambda d: _file(d / "z.wav", b""), "empty"),
    "zero length": (lambda d: sf.write(str(d / "z.wav"), np.zeros((0, 2)), RATE) or d / "z.wav", "no samples"),
    "one sample": (lambda d: sf.write(str(d / "one.wav"), np.zeros((1, 2)), RATE) or d / "one.wav", "too short"),
    "nan": (lambda d: sf.write(str(d / "n.wav"), np.where(np.arange(RATE)[:, None] == 500, np.nan, music(1.0)),
                               RATE, subtype="FLOAT") or d / "n.wav", "NaN or infinite"),
    "inf": (lambda d: sf.write(str(d / "i.wav"), np.where(np.arange(RATE)[:, None] == 9, np.inf, music(1.0)),
                               RATE, subtype="FLOAT") or d / "i.wav", "NaN or infinite"),
    "truncated wav": (lambda d: _truncated(d, "wav"), "truncated"),
    "truncated flac": (lambda d: _truncated(d, "flac"), "corrupt or truncated"),
    "rate too low": (lambda d: sf.write(str(d / "low.wav"), music(0.5, 4000), 4000) or d / "low.wav", "outside the supported"),
}


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(folder: Path, ext: str) -> Path:
    path = folder / f"cut.{ext}"
    sf.write(str(path), music(2.0), RATE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_give_one_line_and_no_output(tmp_path, capsys, model_file, case):
    make, pattern = BAD_INPUTS[case]
    src = make(tmp_path)
    out = tmp_path / "out"
    code, _, err = run(["separate", src, "-m", model_file, "-o", out], capsys)
    assert_one_line_error(code, err, pattern)
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert leftovers == [], leftovers


def test_silence_is_separated_without_nan(tmp_path, capsys, model_file):
    sf.write(str(tmp_path / "quiet.wav"), np.zeros((RATE, 2)), RATE)
    code, _, err = run(["separate", tmp_path / "quiet.wav", "-m", model_file, "-o", tmp_path / "out", "--bits", "32f"], capsys)
    assert code == 0, err
    for stem in stems_of(tmp_path / "out", "quiet").values():
        assert np.isfinite(stem).all() and np.abs(stem).max() == 0


@pytest.mark.parametrize("content,pattern", [(None, "no such model"), (b"garbage" * 10, "damaged"),
                                             ("half", "damaged")])
def test_missing_or_damaged_model(tmp_path, capsys, model_file, content, pattern):
    sf.write(str(tmp_path / "s.wav"), music(1.0), RATE)
    bad = tmp_path / "bad.pt"
    if content == "half":
        bad.write_bytes(model_file.read_bytes()[:5000])
    elif content is not None:
        bad.write_bytes(content)
    code, _, err = run(["separate", tmp_path / "s.wav", "-m", bad, "-o", tmp_path / "out"], capsys)
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "out").exists()
    code, _, err = run(["info", bad], capsys)
    assert_one_line_error(code, err, pattern)


def test_failed_file_in_a_batch_does_not_stop_the_rest(tmp_path, capsys, model_file):
    sf.write(str(tmp_path / "good.wav"), music(1.0), RATE)
    (tmp_path / "bad.wav").write_text("text")
    code, out, err = run(["separate", tmp_path / "good.wav", tmp_path / "bad.wav", "-m", model_file,
                          "-o", tmp_path / "out"], capsys)
    assert code == 2  # some files failed: exit 2, the others are done
    assert (tmp_path / "out" / "good" / "vocals.wav").exists() and not (tmp_path / "out" / "bad").exists()
    assert "separated 1 of 2" in out and "1 failed" in out


def test_a_missing_input_in_a_batch_does_not_stop_the_rest(tmp_path, capsys, model_file):
    sf.write(str(tmp_path / "good.wav"), music(1.0), RATE)
    code, out, err = run(["separate", tmp_path / "missing.wav", tmp_path / "good.wav", "-m", model_file,
                          "-o", tmp_path / "out"], capsys)
    assert code == 2 and "missing.wav: no such file or folder" in err
    assert (tmp_path / "out" / "good" / "vocals.wav").exists()
    assert "separated 1 of 2" in out and "1 failed" in out
    code, out, err = run(["separate", tmp_path / "missing.wav", "-m", model_file, "-o", tmp_path / "out2"], capsys)
    assert_one_line_error(code, err, "missing.wav: no such file or folder")
    assert not (tmp_path / "out2").exists()


def test_an_input_whose_name_is_not_utf8(tmp_path, model_file):
    """Separated into a track folder of the same bytes, and the summary line printed (with
    the byte escaped) instead of an internal error."""
    import os
    import sys

    song = os.fsencode(str(tmp_path)) + b"/song\xff.wav"
    sf.write(tmp_path / "plain.wav", music(0.5), RATE)
    os.rename(tmp_path / "plain.wav", song)
    proc = subprocess.run([sys.executable, "-m", "convsep", "separate", os.fsdecode(song), "-m", str(model_file),
                           "-o", str(tmp_path / "out"), "--no-progress"], capture_output=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"separated 1 of 1" in proc.stdout and b"\\udcff" in proc.stdout
    assert os.listdir(os.fsencode(str(tmp_path / "out"))) == [b"song\xff"]


@pytest.mark.parametrize("rate", [8000, 44101, 96000])
def test_keep_rate_stems_add_up_to_the_input(tmp_path, capsys, model_file, rate):
    """Each stem resampled back alone added up to the input resampled twice (errors up to
    0.025 at 8 kHz); the input at its own rate corrects them."""
    x = music(1.0, rate)
    x[::97] += 0.3                                   # clicks: content up to the input's Nyquist
    sf.write(str(tmp_path / "song.wav"), x, rate, subtype="FLOAT")
    code, _, err = run(["separate", tmp_path / "song.wav", "-m", model_file, "-o", tmp_path / "out",
                        "--keep-rate", "--bits", "32f"], capsys)
    assert code == 0, err
    stems = [sf.read(str(tmp_path / "out" / "song" / f"{s}.wav"), dtype="float32") for s in ("vocals", "drums", "bass", "other")]
    assert all(r == rate and a.shape == x.shape for a, r in stems)
    assert np.abs(sum(a for a, _ in stems) - x).max() < 1e-5
    code, _, err = run(["separate", tmp_path / "song.wav", "-m", model_file, "-o", tmp_path / "two",
                        "--keep-rate", "--bits", "32f", "--two-stems", "vocals"], capsys)
    two = [sf.read(str(tmp_path / "two" / "song" / f"{s}.wav"), dtype="float32")[0] for s in ("vocals", "no_vocals")]
    assert code == 0 and np.abs(two[0] + two[1] - x).max() < 1e-5
