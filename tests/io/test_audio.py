"""convsep.io.audio: truncated compressed files are refused (or read as far as they decode on
request); complete ones pass."""
import argparse
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import soundfile as sf

from convsep.cli import main

RATE = 44100


# -- truncated compressed files ------------------------------------------------------------
needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


def _encode(tmp_path, ext, *extra, name="full") -> "Path":
    path = tmp_path / f"{name}.{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=6", "-ac", "2", "-ar", str(RATE),
                    *extra, str(path)], check=True)
    return path


def _cut(path, fraction=0.5):
    cut = path.with_name(f"cut{path.suffix}")
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return cut


@needs_ffmpeg
@pytest.mark.parametrize("ext,extra,pattern", [
    ("mp3", (), "6.0 s declared, 3.0 s decoded"), ("ogg", (), "Ogg stream stops"), ("flac", (), "corrupt or truncated"),
    ("m4a", ("-c:a", "aac", "-movflags", "+faststart"), "decoder errors"),     # decoded by ffmpeg
    ("opus", ("-c:a", "libopus", "-ar", "48000"), "Ogg stream stops"), ("wav", (), "truncated WAV file"),
    ("mp3", ("-write_xing", "0"), "the last MPEG frame is cut off"),           # CBR, no length declared
])
def test_truncated_compressed_file_is_refused(tmp_path, capsys, model_file, ext, extra, pattern):
    cut = _cut(_encode(tmp_path, ext, *extra))
    code = main(["separate", str(cut), "-m", str(model_file), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@needs_ffmpeg
def test_allow_truncated_keeps_going_with_a_loud_warning(tmp_path, capsys, model_file):
    cut = _cut(_encode(tmp_path, "mp3"))
    with pytest.warns(UserWarning, match=r"TRUNCATED OR DAMAGED: 6.0 s declared, 3.0 s decoded") as caught:
        code = main(["separate", str(cut), "-m", str(model_file), "-o", str(tmp_path / "out"), "--allow-truncated"])
    assert code == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    # On the terminal a warning is one line in the command's name:
    from convsep.cli.failures import run_command

    shown = []
    run_command(argparse.Namespace(command="separate", func=lambda args: shown.append(
        warnings.formatwarning(caught[0].message, UserWarning, "x.py", 1))))
    assert shown[0].startswith("convsep separate: warning: ") and shown[0].count("\n") == 1
    assert 2.5 < sf.info(str(tmp_path / "out" / "cut" / "vocals.wav")).duration < 3.5


@needs_ffmpeg
def test_complete_compressed_files_pass(tmp_path, capsys, model_file):
    full = _encode(tmp_path, "mp3")
    vbr = _encode(tmp_path, "mp3", "-q:a", "4", "-write_xing", "0", name="vbr")
    # libsndfile alone reads a VBR MP3 without a Xing header as a fraction of its length.
    code = main(["separate", str(full), str(vbr), "-m", str(model_file), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    for track in ("full", "vbr"):
        assert 5.9 < sf.info(str(tmp_path / "out" / track / "vocals.wav")).duration < 6.2


# -- integer samples are rounded to the nearest step -------------------------------------------
@pytest.mark.parametrize("bits,subtype,scale", [("16", "int16", 32768), ("24", "int32", 8388608 * 256)])
def test_integer_output_rounds_to_nearest(tmp_path, bits, subtype, scale):
    import numpy as np

    from convsep.io.audio import write_audio

    step = 1 / (scale if bits == "16" else 8388608)
    audio = np.array([[0.7 * step, 0.4 * step, -0.7 * step, -29491.2 * step, 0.5, 1.5, -1.5]])
    write_audio(tmp_path / "x.wav", audio, bits=bits)
    stored, _ = sf.read(str(tmp_path / "x.wav"), dtype=subtype)
    per_step = 1 if bits == "16" else 256
    assert (stored // per_step).tolist() == [1, 0, -1, -29491, round(0.5 / step), 1 / step - 1, -1 / step]


def test_cli_16_bit_stems_are_the_float_stems_rounded(tmp_path, capsys, model_file):
    import numpy as np

    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "in.wav"), 0.2 * rng.standard_normal((RATE, 2)), RATE, subtype="FLOAT")
    for bits in ("16", "32f"):
        code = main(["separate", str(tmp_path / "in.wav"), "-m", str(model_file), "-o", str(tmp_path / bits),
                     "--bits", bits, "--no-progress"])
        assert code == 0, capsys.readouterr().err
    errors = []
    for stem in ("vocals", "drums", "bass", "other"):
        exact, _ = sf.read(str(tmp_path / "32f" / "in" / f"{stem}.wav"), dtype="float64")
        stored, _ = sf.read(str(tmp_path / "16" / "in" / f"{stem}.wav"), dtype="int16")
        errors.append(stored - exact * 32768)
    error = np.stack(errors)
    assert np.abs(error).max() <= 0.5 + 1e-3
    assert abs(error.mean()) < 0.02, "16-bit stems are biased (rounded down instead of to nearest)"


@needs_ffmpeg
@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_allow_truncated_also_takes_wav_and_flac(tmp_path, capsys, model_file, ext):
    """The README promises --allow-truncated for every format; a cut WAV or FLAC was still refused."""
    cut = _cut(_encode(tmp_path, ext))
    with pytest.warns(UserWarning, match="TRUNCATED OR DAMAGED"):
        code = main(["separate", str(cut), "-m", str(model_file), "-o", str(tmp_path / "out"), "--allow-truncated"])
    assert code == 0, capsys.readouterr().err
    assert 2.0 < sf.info(str(tmp_path / "out" / "cut" / "vocals.wav")).duration < 3.5


def test_file_names_that_are_not_utf8_are_read_and_written(tmp_path):
    """A byte such as 0xff in a file name (surrogate-escaped in Python) used to fail inside
    soundfile with UnicodeEncodeError (exit 1)."""
    import os

    import numpy as np

    from convsep.io.audio import probe, read_audio, write_audio

    folder = os.fsdecode(os.fsencode(str(tmp_path)) + b"/odd\xff")
    os.mkdir(folder)
    path = os.path.join(folder, os.fsdecode(b"song\xff.wav"))
    audio = (0.1 * np.random.default_rng(0).standard_normal((2, 4410))).astype(np.float32)
    write_audio(path, audio, 44100, bits="32f")
    assert os.fsencode(path) in [os.path.join(os.fsencode(folder), n) for n in os.listdir(os.fsencode(folder))]
    assert probe(path).rate == 44100
    np.testing.assert_allclose(read_audio(path, 44100, 2), audio, atol=1e-6)


@needs_ffmpeg
def test_mp3_decoder_notes_do_not_surround_the_error(tmp_path, model_file):
    """mpg123 (inside libsndfile) writes "Xing stream size off ..." to file descriptor 2:
    the error is still the only line."""
    import os
    import sys

    cut = _cut(_encode(tmp_path, "mp3"))
    proc = subprocess.run([sys.executable, "-m", "convsep", "separate", str(cut), "-m", str(model_file),
                           "-o", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines() if "error:" in line]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
