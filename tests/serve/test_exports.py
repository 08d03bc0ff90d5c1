"""The musicians' downloads of the web app: the mix of the stems at chosen gains, stems and zips
as FLAC or MP3, NI Stems (``.stem.mp4``) for DJs, and exports that never hold up other requests."""
from __future__ import annotations

import io
import shutil
import threading
import time
import warnings
import zipfile

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from convsep.serve.app import ServeOptions, create_app  # noqa: E402
from tests.serve.test_app import RATE, song, wait_done, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A client and a finished job of a 2 s song (shared by the module's tests)."""
    root = tmp_path_factory.mktemp("serve") / "jobs"
    with TestClient(create_app(ServeOptions(root=root))) as client:
        audio = song(2.0, seed=3)
        job_id = client.post("/api/jobs", files={"file": ("Track.wav", wav_bytes(audio), "audio/wav")}).json()["id"]
        job = wait_done(client, job_id)
        assert job["status"] == "done", job
        yield client, job, audio


def stems_of(client, job) -> dict[str, np.ndarray]:
    return {s["name"]: sf.read(io.BytesIO(client.get(s["url"]).content), dtype="int16", always_2d=True)[0]
            for s in job["stems"]}


def test_mix_is_the_weighted_sum_of_the_stems(done):
    client, job, audio = done
    gains = {"vocals": 0.0, "drums": 1.0, "bass": 0.7, "other": 1.2}
    response = client.post(job["mix"], json={"gains": gains, "format": "wav"})
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert "attachment" in response.headers["content-disposition"] and "Track%20-%20mix.wav" in response.headers["content-disposition"]
    mix, rate = sf.read(io.BytesIO(response.content), dtype="int16", always_2d=True)
    stems = stems_of(client, job)
    expected = sum(gains[name] * stem.astype(float) for name, stem in stems.items())
    assert rate == RATE and mix.shape == audio.shape                 # the song's length
    assert np.abs(mix - np.clip(expected, -32768, 32767)).max() <= 1          # within 1 LSB
    for fmt, media in (("flac", "audio/flac"), ("mp3", "audio/mpeg")):
        response = client.post(job["mix"], json={"gains": {"vocals": 0}, "format": fmt})
        assert response.status_code == 200 and response.headers["content-type"] == media, response.text
        decoded, _ = sf.read(io.BytesIO(response.content), always_2d=True)
        assert abs(len(decoded) - len(audio)) <= 2304, fmt
    leftovers = [p.name for p in client.app.state.jobs.root.rglob("mix-*")]
    assert leftovers == [], "a mix is removed once sent"
    for body, message in [({"gains": {"kazoo": 1}}, "unknown stem"), ({"gains": {"vocals": -1}}, "gain of vocals"),
                          ({"gains": {}, "format": "ogg"}, "unsupported format"), ({"gains": []}, "expected")]:
        response = client.post(job["mix"], json=body)
        assert response.status_code == 400 and message in response.json()["error"], response.text


def test_stems_and_zip_as_flac_or_mp3(done):
    client, job, _ = done
    stems = stems_of(client, job)
    flac = client.get(job["stems"][0]["url"], params={"format": "flac", "download": 1})
    assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
    assert flac.headers["content-disposition"].endswith("Track%20-%20vocals.flac")
    assert np.array_equal(sf.read(io.BytesIO(flac.content), dtype="int16", always_2d=True)[0], stems["vocals"])
    mp3 = client.get(job["stems"][1]["url"], params={"format": "mp3"})
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg" and mp3.content[:2] in (b"ID", b"\xff\xfb")
    archive = client.get(job["zip"], params={"format": "flac"})
    assert archive.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == \
        sorted(f"Track/{name}.flac" for name in stems)
    assert client.get(job["zip"], params={"format": "aiff"}).status_code == 400


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")
def test_stem_mp4_download(done, tmp_path):
    from convsep.io.nistems import read_stem_mp4

    client, job, audio = done
    response = client.get(job["stem_mp4"])
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].endswith('filename="Track.stem.mp4"')
    (tmp_path / "t.stem.mp4").write_bytes(response.content)
    streams, metadata = read_stem_mp4(tmp_path / "t.stem.mp4")
    assert streams.shape[0] == 5 and [s["name"] for s in metadata["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    n = min(streams.shape[-1], len(audio))
    error = streams[0][:, :n] - audio.T[:, :n]
    assert 10 * np.log10(np.sum(audio.T[:, :n] ** 2) / np.sum(error ** 2)) > 15


def test_an_export_being_built_holds_up_no_other_request(done, monkeypatch):
    client, job, _ = done
    manager = client.app.state.jobs
    real = zipfile.ZipFile.write

    def slow_write(self, *args, **kwargs):
        time.sleep(0.5)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", slow_write)
    worker = threading.Thread(target=manager.zip_path, args=(manager.get(job["id"]), "mp3"))
    worker.start()
    try:
        time.sleep(0.2)
        slowest = 0.0
        while worker.is_alive():
            started = time.perf_counter()
            assert client.get("/api/jobs").status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        worker.join()
    assert slowest < 0.5, f"a status poll took {slowest:.2f} s while a zip was built"
