"""Musicians' formats: NI Stems (``.stem.mp4``) read back stream by stream, the mix of stems at
chosen gains (within half a 16-bit step of the weighted sum), and FLAC/MP3 exports."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.io.mixdown import check_gains, convert, mix_stems
from convsep.io.nistems import NI_STEMS, read_stem_mp4, write_stem_mp4

RATE = 44100
needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


def snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(reference.shape[-1], estimate.shape[-1])
    error = reference[..., :n] - estimate[..., :n]
    return 10 * np.log10(np.sum(reference[..., :n] ** 2) / np.sum(error ** 2))


@pytest.fixture()
def stem_files(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    files = {}
    for i, name in enumerate(("vocals", "drums", "bass", "other")):
        audio = 0.2 * np.sin(2 * np.pi * 110 * (i + 1) * t + i)[None].repeat(2, 0) + 0.02 * rng.standard_normal((2, t.size))
        files[name] = tmp_path / f"{name}.wav"
        sf.write(str(files[name]), audio.T, RATE, subtype="PCM_16")
    return files


def ffprobe_streams(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


@needs_ffmpeg
def test_stem_mp4_reads_back_with_five_streams_and_the_ni_atom(tmp_path, stem_files):
    target = write_stem_mp4(tmp_path / "song.stem.mp4", stem_files)
    assert [s["codec_name"] for s in ffprobe_streams(target)] == ["aac"] * 5
    streams, metadata = read_stem_mp4(target)
    assert [s["name"] for s in metadata["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    assert "mastering_dsp" in metadata and all(s["color"].startswith("#") for s in metadata["stems"])
    sources = {name: sf.read(str(path), always_2d=True)[0].T for name, path in stem_files.items()}
    references = [sum(sources.values()), *(sources[name] for name in NI_STEMS)]
    for reference, stream in zip(references, streams):
        assert snr(reference, stream) > 15
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporaries left"
    with pytest.raises(ConvSepError, match="exists"):
        write_stem_mp4(target, stem_files)
    stempeg = pytest.importorskip("stempeg")
    audio, rate = stempeg.read_stems(str(target))
    assert audio.shape[0] == 5 and rate == RATE


@needs_ffmpeg
def test_stem_mp4_refuses_missing_stems(tmp_path, stem_files):
    with pytest.raises(ConvSepError, match="vocals missing"):
        write_stem_mp4(tmp_path / "x.stem.mp4", {k: v for k, v in stem_files.items() if k != "vocals"})


@needs_ffmpeg
def test_cli_writes_a_stem_mp4(tmp_path, capsys, model_file):
    t = np.arange(2 * RATE) / RATE
    song = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(str(tmp_path / "My Song.wav"), song, RATE, subtype="FLOAT")
    args = ["separate", str(tmp_path / "My Song.wav"), "-m", str(model_file), "-o", str(tmp_path / "out"),
            "--ext", "stem.mp4", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    target = tmp_path / "out" / "My Song.stem.mp4"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["My Song.stem.mp4"]
    streams, metadata = read_stem_mp4(target)
    assert streams.shape[0] == 5 and len(metadata["stems"]) == 4
    assert snr(song.T, streams[0]) > 15
    assert snr(streams[0], streams[1:].sum(0)) > 15        # the stems add up to the mixture
    before = target.stat().st_mtime_ns
    assert main(args) == 2 and "exists" in capsys.readouterr().err          # kept without --overwrite
    assert target.stat().st_mtime_ns == before
    assert main([*args, "--two-stems", "vocals"]) == 2
    assert "stem.mp4 holds drums, bass, other and vocals" in capsys.readouterr().err


def test_mix_is_the_weighted_sum_within_half_a_step(tmp_path, stem_files):
    gains = {"vocals": 0.0, "drums": 1.0, "bass": 0.5, "other": 1.25}
    mix_stems(stem_files, gains, tmp_path / "mix.wav")
    mixed, rate = sf.read(str(tmp_path / "mix.wav"), dtype="int16", always_2d=True)
    expected = sum(gains[name] * sf.read(str(path), dtype="int16", always_2d=True)[0].astype(float)
                   for name, path in stem_files.items())
    assert rate == RATE and mixed.shape == expected.shape
    assert np.abs(mixed - expected).max() <= 0.5
    for fmt in ("flac", "mp3"):
        mix_stems(stem_files, gains, tmp_path / f"mix.{fmt}")
        decoded, _ = sf.read(str(tmp_path / f"mix.{fmt}"), always_2d=True)
        assert abs(len(decoded) - len(expected)) <= 1152 * 2, fmt
        if fmt == "flac":
            assert np.abs(decoded * 32768 - expected).max() <= 0.5
    convert(stem_files["bass"], tmp_path / "bass.flac")
    assert np.array_equal(sf.read(str(tmp_path / "bass.flac"), dtype="int16")[0],
                          sf.read(str(stem_files["bass"]), dtype="int16")[0])


def test_gains_are_checked():
    names = ["vocals", "drums"]
    assert check_gains({"vocals": 0}, names) == {"vocals": 0.0, "drums": 1.0}
    for bad in ({"guitar": 1}, {"vocals": -1}, {"vocals": "x"}, {"vocals": float("nan")}, {"vocals": True}):
        with pytest.raises(ConvSepError):
            check_gains(bad, names)


@needs_ffmpeg
def test_cli_stem_mp4_with_two_jobs(tmp_path, capsys, model_file):
    t = np.arange(RATE) / RATE
    for name in ("a", "b"):
        sf.write(str(tmp_path / f"{name}.wav"), np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1), RATE)
    code = main(["separate", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-m", str(model_file),
                 "-o", str(tmp_path / "out"), "--ext", "stem.mp4", "--jobs", "2", "--threads", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.stem.mp4", "b.stem.mp4"]
