"""What the Python API and the CLI are given: dtypes, shapes, rates, stream chunks, truncated
compressed files, bad devices and sizes; and the one error path (exit codes, --debug)."""
import argparse
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import convsep
from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.inputs import as_waveform, check_rate
from convsep.models import ConvSep, preset
from convsep.separate import Separator

RATE = 44100


@pytest.fixture(scope="module")
def separator():
    torch.manual_seed(0)
    return Separator(ConvSep(preset("convsep-stereo")).eval())


def tone(seconds=0.5, channels=2) -> np.ndarray:
    """float32 (channels, samples) in [-0.5, 0.5]."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


# -- dtypes -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,scale", [(np.int16, 32768), (np.int32, 2 ** 31), (np.int8, 128)])
def test_signed_pcm_is_scaled_by_its_full_range(separator, dtype, scale):
    audio = tone()
    pcm = np.round(audio * (scale - 1)).astype(dtype)
    from_pcm = convsep.separate(pcm, RATE, model=separator)
    from_float = convsep.separate(pcm.astype(np.float32) / scale, RATE, model=separator)
    for name in from_float:
        assert torch.equal(from_pcm[name], from_float[name])
    assert max(float(s.abs().max()) for s in from_pcm.values()) < 1.0     # never 10194


def test_uint8_is_8bit_pcm_and_tensors_are_scaled_too(separator):
    audio = tone()
    as_u8 = as_waveform(np.round(audio * 127 + 128).astype(np.uint8))
    assert np.abs(as_u8 - audio).max() < 1 / 100
    as_i16 = as_waveform(torch.from_numpy(np.round(audio * 32767).astype(np.int16)))
    assert np.abs(as_i16 - audio).max() < 1e-4


BAD_ARRAYS = [
    ("bool", lambda: tone() > 0, "bool samples are not audio"),
    ("complex", lambda: tone().astype(np.complex64), "complex64 samples are not audio"),
    ("int64", lambda: (tone() * 1000).astype(np.int64), "int64 samples have no standard audio scale"),
    ("uint16", lambda: (tone() * 1000 + 2000).astype(np.uint16), "uint16 samples have no standard audio scale"),
    ("object", lambda: np.array([["a", "b"], ["c", "d"]], dtype=object), "not audio"),
    ("strings", lambda: np.array([["a", "b"]]), "not audio"),
    ("transposed-stereo", lambda: tone().T, "looks transposed"),
    ("transposed-mono", lambda: tone(channels=1).T, "looks transposed"),
    ("three-dims", lambda: tone()[None], "expected (channels, samples)"),
    ("scalar", lambda: np.float32(0.5), "expected (channels, samples)"),
    ("too-many-channels", lambda: np.zeros((64, 5000), np.float32), "64 channels"),
    ("nan", lambda: np.where(np.arange(RATE // 2) == 7, np.nan, tone()).astype(np.float32), "NaN or infinite"),
    ("inf-tensor", lambda: torch.full((2, 5000), float("inf")), "NaN or infinite"),
    ("ragged-list", lambda: [[0.0, 0.1], [0.2]], "a list must hold numbers"),
    ("list-of-strings", lambda: [["x", "y"]], "a list must hold numbers"),
    ("dict", lambda: {"left": [0.0]}, "expected a numpy array or a torch tensor"),
    ("string", lambda: "song.wav", "expected a numpy array or a torch tensor"),
    ("none", lambda: None, "expected a numpy array or a torch tensor"),
    ("empty", lambda: np.zeros((2, 0), np.float32), "too short"),
]


@pytest.mark.parametrize("name,make,pattern", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_bad_arrays_are_refused_with_one_line(separator, name, make, pattern):
    with pytest.raises(ConvSepError, match="^[^\n]*$") as caught:
        convsep.separate(make(), RATE, model=separator)
    assert pattern in str(caught.value)


def test_lists_are_read_as_float_numbers(separator):
    audio = tone()
    from_list = convsep.separate(audio.tolist(), RATE, model=separator)
    from_array = convsep.separate(audio, RATE, model=separator)
    assert all(torch.equal(from_list[k], from_array[k]) for k in from_array)


@pytest.mark.parametrize("rate,pattern", [
    ("44100", "integer number of Hz"), (44100.5, "integer number of Hz"), (True, "integer number of Hz"),
    (None, "integer number of Hz"), (0, "outside the supported"), (-44100, "outside the supported"),
    (10 ** 9, "outside the supported"), (float("nan"), "integer number of Hz"),
])
def test_bad_rates_are_refused(separator, rate, pattern):
    with pytest.raises(ConvSepError, match=pattern):
        convsep.separate(tone(), rate, model=separator)
    with pytest.raises(ConvSepError, match=pattern):
        separator(tone(), rate)


def test_integral_rates_of_any_type_are_accepted():
    assert check_rate(44100.0) == check_rate(np.int64(44100)) == check_rate(44100) == 44100


def test_separator_call_checks_the_same(separator):
    with pytest.raises(ConvSepError, match="looks transposed"):
        separator(tone().T, RATE)
    pcm = np.round(tone() * 32767).astype(np.int16)
    assert float(max(s.abs().max() for s in separator(pcm, RATE).values())) < 1.0


# -- stream ------------------------------------------------------------------------------
def test_stream_refuses_nan_chunks(separator):
    chunks = [tone(0.2), np.full((2, 4410), np.nan, np.float32), tone(0.2)]
    with pytest.raises(ConvSepError, match="chunk: the audio contains NaN"):
        list(separator.stream(chunks))


def test_stream_scales_int16_chunks_like_float(separator):
    audio = tone(1.0)
    pcm = np.round(audio * 32767).astype(np.int16)
    out_pcm = torch.cat(list(separator.stream([pcm[:, :20000], pcm[:, 20000:]])), -1)
    out_float = torch.cat(list(separator.stream([pcm[:, :20000] / np.float32(32768),
                                                 pcm[:, 20000:] / np.float32(32768)])), -1)
    assert torch.allclose(out_pcm, out_float, atol=1e-6)
    assert float(out_pcm.abs().max()) < 1.0


@pytest.mark.parametrize("chunk,pattern", [
    (np.zeros((1, 100), np.float32), "expected chunks of shape (2, n)"),
    (np.zeros((4410, 2), np.float32), "looks transposed"),
    (np.zeros((2, 100), bool), "bool samples"),
])
def test_stream_refuses_bad_chunks(separator, chunk, pattern):
    with pytest.raises(ConvSepError) as caught:
        list(separator.stream([chunk]))
    assert pattern in str(caught.value)


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


# -- bounds, devices, the error path --------------------------------------------------------
@pytest.mark.parametrize("args,pattern", [
    (["--tracks-train", "1000000000"], "at most 100000"),
    (["--tracks-test", "1000000000"], "at most 100000"),
    (["--seconds", "1e9"], "--seconds must be in"),
])
def test_synth_sizes_are_bounded(tmp_path, capsys, args, pattern):
    code = main(["synth", str(tmp_path / "corpus"), *args, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "corpus").exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", ""])
def test_bad_device_is_one_line(tmp_path, capsys, model_file, device):
    song = tmp_path / "s.wav"
    sf.write(str(song), tone().T, RATE)
    code = main(["separate", str(song), "-m", str(model_file), "--device", device, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "device" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_unexpected_exception_is_one_line_with_where_to_report_and_debug_shows_the_traceback(monkeypatch, capsys):
    import convsep.cli.info as info

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(info, "handler", broken)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error: ZeroDivisionError: boom" in err
    assert "report" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", "info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err


@pytest.mark.parametrize("argv,flag", [(["--help"], "--debug"), (["separate", "--help"], "--allow-truncated")])
def test_exit_codes_are_documented_in_help(capsys, argv, flag):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out = capsys.readouterr().out
    assert stop.value.code == 0 and flag in out
    assert "exit codes: 0 success; 2 error" in " ".join(out.split())
