"""The web app's JSON API (in process), refusals of path traversal through every request
parameter, upload limits, expiry and clean-up; and ``convsep serve --port P`` as a process."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():     # starlette's TestClient says it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from convsep.serve.app import ServeOptions, create_app  # noqa: E402

RATE = 44100


def song(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A short stereo test song (samples, 2): a pulsing tone over a noise beat."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    beat = 0.2 * rng.standard_normal(t.size) * (np.mod(t, 0.5) < 0.05)
    return np.stack([tone + beat, 0.7 * tone + beat], axis=1).astype(np.float32)


def wav_bytes(audio: np.ndarray, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, RATE, subtype=subtype, format="WAV")
    return buffer.getvalue()


def wait_done(client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    progress = []
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        progress.append(job["progress"])
        if job["status"] in ("done", "error"):
            job["seen_progress"] = progress
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture()
def app_client(tmp_path):
    root = tmp_path / "jobs"
    app = create_app(ServeOptions(max_upload_bytes=2_000_000, queue_size=64, keep_seconds=3600, root=root))
    with TestClient(app) as client:
        client.root = root
        yield client
    assert not root.exists(), "the jobs' folder must be removed when the server stops"


def test_job_lifecycle(app_client):
    audio = song(2.0)
    response = app_client.post("/api/jobs", files={"file": ("my song.wav", wav_bytes(audio), "audio/wav")})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    job = wait_done(app_client, job_id)
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and all(0 <= p <= 1 for p in job["seen_progress"])
    assert [s["name"] for s in job["stems"]] == ["vocals", "drums", "bass", "other"]
    total = 0
    for stem in job["stems"]:
        got = app_client.get(stem["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
        data, rate = sf.read(io.BytesIO(got.content), dtype="float32")
        assert rate == RATE and data.shape == audio.shape
        total = total + data
    assert np.abs(total - audio).max() < 4 * 2 ** -15 + 1e-4       # 16-bit stems add up to the song
    download = app_client.get(job["stems"][0]["url"], params={"download": 1})
    assert "attachment" in download.headers["content-disposition"]
    archive = app_client.get(job["zip"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert sorted(names) == sorted(f"my song/{s}.wav" for s in ("vocals", "drums", "bass", "other"))
    assert [j["id"] for j in app_client.get("/api/jobs").json()["jobs"]] == [job_id]
    assert app_client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert app_client.get(f"/api/jobs/{job_id}").status_code == 404
    assert list(app_client.root.iterdir()) == []


def test_two_stems_and_bad_input(app_client):
    response = app_client.post("/api/jobs", data={"two_stems": "vocals"},
                               files={"file": ("a.flac", wav_bytes(song(1.0)), "audio/flac")})
    job = wait_done(app_client, response.json()["id"])
    # a WAV named .flac is still read (soundfile looks at the content)
    assert [s["name"] for s in job["stems"]] == ["vocals", "no_vocals"]
    bad = app_client.post("/api/jobs", files={"file": ("noise.mp3", b"this is not audio" * 100, "audio/mpeg")})
    job = wait_done(app_client, bad.json()["id"])
    assert job["status"] == "error" and "noise.mp3" in job["error"] and "input" not in job["error"]
    assert "\n" not in job["error"]
    for data, files, message in [
        ({}, {"file": ("notes.txt", b"hello", "text/plain")}, "not an audio file type"),
        ({"stems": "vocals,kazoo"}, {"file": ("a.wav", wav_bytes(song(0.5)), "audio/wav")}, "unknown stem"),
        ({"two_stems": "kazoo"}, {"file": ("a.wav", wav_bytes(song(0.5)), "audio/wav")}, "unknown source"),
        ({}, {"file": ("empty.wav", b"", "audio/wav")}, "empty"),
    ]:
        response = app_client.post("/api/jobs", data=data, files=files)
        assert response.status_code == 400 and message in response.json()["error"], response.text


def test_upload_limit(app_client):
    big = wav_bytes(song(8.0))                   # 2.8 MB > 2 MB
    response = app_client.post("/api/jobs", files={"file": ("big.wav", big, "audio/wav")})
    assert response.status_code == 413 and "too large" in response.json()["error"]
    assert list(app_client.root.iterdir()) == []


TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
              "....//....//etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "%00", "%2e"]


def test_path_traversal_is_refused(app_client, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    response = app_client.post("/api/jobs", files={"file": ("s.wav", wav_bytes(song(1.0)), "audio/wav")})
    job_id = response.json()["id"]
    assert wait_done(app_client, job_id)["status"] == "done"
    relative = os.path.relpath(secret, app_client.root / job_id / "stems")
    for attack in TRAVERSALS + [relative, str(secret), relative.replace("/", "%2F")]:
        for url in (f"/api/jobs/{attack}", f"/api/jobs/{job_id}/stems/{attack}",
                    f"/api/jobs/{attack}/stems/vocals", f"/api/jobs/{attack}/zip", f"/static/{attack}",
                    f"/{attack}"):
            got = app_client.get(url)
            assert got.status_code in (404, 405), (url, got.status_code)
            assert b"top secret" not in got.content and b"root:" not in got.content
        assert app_client.delete(f"/api/jobs/{attack}").status_code in (404, 405)
        # a model name is a choice from a list, never a path
        response = app_client.post("/api/jobs", data={"model": attack},
                                   files={"file": ("s.wav", wav_bytes(song(0.5)), "audio/wav")})
        assert response.status_code == 400 and "unknown model" in response.json()["error"]
        # an upload's name is only displayed: its folders are dropped and the file is stored
        # under a name the server chooses (a backslash is a character of the name, shown as sent)
        response = app_client.post("/api/jobs", files={"file": (f"{attack}.wav", wav_bytes(song(0.5)), "audio/wav")})
        assert response.status_code == 201
        shown = app_client.get(f"/api/jobs/{response.json()['id']}").json()["filename"]
        assert "/" not in shown and not shown.startswith(".")
    for job in app_client.get("/api/jobs").json()["jobs"]:
        wait_done(app_client, job["id"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs", "secret.txt"]
    for folder in app_client.root.iterdir():
        assert folder.parent == app_client.root
        assert all(p.name in ("stems", "exports") for p in folder.iterdir())


def test_cross_origin_writes_and_expiry(app_client):
    response = app_client.post("/api/jobs", headers={"Origin": "http://evil.example"},
                               files={"file": ("s.wav", wav_bytes(song(0.5)), "audio/wav")})
    assert response.status_code == 403
    response = app_client.post("/api/jobs", files={"file": ("s.wav", wav_bytes(song(0.5)), "audio/wav")})
    job_id = response.json()["id"]
    wait_done(app_client, job_id)
    jobs = app_client.app.state.jobs
    assert jobs.expire(now=time.time()) == []
    assert jobs.expire(now=time.time() + 2 * jobs.keep_seconds) == [job_id]
    assert app_client.get(f"/api/jobs/{job_id}").status_code == 404
    assert list(app_client.root.iterdir()) == []


def test_page_and_static_files(app_client):
    page = app_client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert app_client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert app_client.get("/static/index.html").status_code == 404      # only the listed files
    info = app_client.get("/api/info").json()
    assert info["models"][0]["name"] == "default" and "mp3" in info["formats"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, *extra: str) -> subprocess.Popen:
    """``convsep serve --port P`` as a process, once it answers."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "convsep", "serve", "--port", str(port), "--threads", "1",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"convsep serve exited: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("convsep serve did not start")


def start_public_server(port: int) -> tuple[subprocess.Popen, list[str], str]:
    """``convsep serve --host 0.0.0.0 --port P`` as a process, its first two lines (the warning
    and the address) and the access token they print. Not polled: /api/info needs the token."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "convsep", "serve", "--port", str(port), "--host", "0.0.0.0",
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        return proc, lines, lines[1].split("?token=")[1].split()[0]
    except BaseException:
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def test_serve_command_end_to_end(tmp_path):
    import httpx

    port = free_port()
    proc = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        audio = song(3.0, seed=1)
        response = httpx.post(f"{base}/api/jobs", files={"file": ("song.wav", wav_bytes(audio), "audio/wav")})
        assert response.status_code == 201
        job_id = response.json()["id"]
        with httpx.Client(base_url=base) as client:
            job = wait_done(client, job_id)
            assert job["status"] == "done"
            stems = [sf.read(io.BytesIO(client.get(s["url"]).content), dtype="float32")[0] for s in job["stems"]]
            # a Host header other than localhost's is refused (no DNS rebinding)
            assert client.get("/api/info", headers={"Host": "evil.example"}).status_code == 400
        assert len(stems) == 4
        assert np.abs(sum(stems) - audio).max() < 4 * 2 ** -15 + 1e-4
        folders = [p for p in Path(tempfile.gettempdir()).glob("convsep-serve-*") if (p / job_id).exists()]
        assert len(folders) == 1
    finally:
        output = stop_server(proc)
    assert f"http://127.0.0.1:{port}/" in output
    assert not folders[0].exists(), "the temporary folder must be removed when the server stops"


def test_serve_refuses_a_busy_port_and_a_missing_model(capsys):
    from convsep.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert main(["serve", "--port", str(sock.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err
    assert main(["serve", "-m", "no-such-model.pt", "--port", "0"]) == 2
    assert "no-such-model.pt" in capsys.readouterr().err


def test_queue_is_bounded(tmp_path):
    from convsep.errors import ConvSepError
    from convsep.serve.jobs import JobManager

    jobs = JobManager(queue_size=1, workers=0, root=tmp_path / "jobs")    # nobody takes jobs off
    try:
        for n in range(2):
            job_id, folder = jobs.new_folder()
            upload = folder / "input.wav"
            upload.write_bytes(wav_bytes(song(0.2)))
            if n == 0:
                assert jobs.submit(job_id, folder, upload, "a.wav", "default").status == "queued"
            else:
                with pytest.raises(ConvSepError, match="queue is full"):
                    jobs.submit(job_id, folder, upload, "b.wav", "default")
                assert not folder.exists()
        assert len(jobs.jobs()) == 1
    finally:
        jobs.close()
    assert not (tmp_path / "jobs").exists()
