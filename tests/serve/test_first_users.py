"""What the first users hit (bugs of the web app's API, each with the request that showed it),
and the security of the answers: headers, no third-party scripts, a token beyond localhost,
half-open connections timed out."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
import warnings

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from convsep.serve.app import ServeOptions, create_app, display_name  # noqa: E402
from tests.serve.test_app import free_port, song, start_public_server, stop_server, wait_done, wav_bytes  # noqa: E402


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(ServeOptions(root=tmp_path / "jobs", max_upload_bytes=1_000_000))) as client:
        yield client


def test_bug1_a_long_name_keeps_its_extension(client):
    name = "Queen - Bohemian Rhapsody (Official Video Remastered) " * 3 + ".mp3"
    assert len(name) > 120
    response = client.post("/api/jobs", files={"file": (name, wav_bytes(song(0.5)), "audio/mpeg")})
    assert response.status_code == 201, response.text
    shown = client.get(response.json()["url"]).json()["filename"]
    assert len(shown) <= 120 and shown.endswith(".mp3") and shown.startswith("Queen - Bohemian")


def test_bug2_removed_waiting_songs_free_their_places(tmp_path):
    from convsep.serve.jobs import JobManager

    jobs = JobManager(queue_size=2, workers=0, root=tmp_path / "jobs")      # nobody takes jobs off
    try:
        def submit(name):
            job_id, folder = jobs.new_folder()
            (folder / "input.wav").write_bytes(wav_bytes(song(0.2)))
            return jobs.submit(job_id, folder, folder / "input.wav", name, "default")

        first, second = submit("a.wav"), submit("b.wav")
        assert [j.position for j in jobs.jobs()] == [1, 2]
        for _ in range(5):          # remove and add again: the queue never fills up
            assert jobs.delete(first.id)
            first = submit("c.wav")
        assert [j.public()["position"] for j in jobs.jobs()] == [1, 2] and second.public()["position"] == 1
    finally:
        jobs.close()


def test_bug5_a_truncated_file_fails_early_with_advice_the_page_can_follow(client, tmp_path):
    if not shutil.which("ffmpeg"):
        pytest.skip("needs ffmpeg")
    path = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=20", "-ac", "2", str(path)], check=True)
    cut = path.read_bytes()[: path.stat().st_size // 2]
    job = client.post("/api/jobs", files={"file": ("cut.mp3", cut, "audio/mpeg")}).json()
    job = wait_done(client, job["id"])
    assert job["status"] == "error" and "truncated" in job["error"]
    assert "pass --allow-truncated" not in job["error"] and "re-download" in job["error"]
    # refused by the decoding pass that measures the level, before any separation
    assert max(job["seen_progress"]) == 0


def test_bug5_the_cli_refuses_a_truncated_file_before_separating(tmp_path, capsys):
    if not shutil.which("ffmpeg"):
        pytest.skip("needs ffmpeg")
    from convsep.io.audio import AudioReader

    path = tmp_path / "song.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=6", "-ac", "2", str(path)], check=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    from convsep.errors import ConvSepError

    with pytest.raises(ConvSepError, match="6.0 s declared, 3.0 s decoded"):
        AudioReader(path).rms()


def test_bug7_quotes_and_backslashes_in_names():
    assert display_name('My %22Live%22 Song.mp3') == 'My "Live" Song.mp3'
    assert display_name("AC\\DC - Back in Black.mp3") == "AC\\DC - Back in Black.mp3"
    assert display_name("folder/sub/song.wav") == "song.wav"
    assert display_name("bad%0Aname.wav") == "badname.wav"


def test_bug8_the_413_message_states_the_limit_set(client):
    big = wav_bytes(song(4.0))          # 1.4 MB > 1 MB
    response = client.post("/api/jobs", files={"file": ("big.wav", big, "audio/wav")})
    assert response.status_code == 413 and response.json()["error"] == "file too large: the limit is 1 MB"
    response = client.post("/api/jobs", content=b"x" * 2_100_000, headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.json()["error"] == "file too large: the limit is 1 MB"


def test_bug9_every_error_is_one_line_of_json(client):
    for method, url, kwargs, status in [
        ("get", "/no/such/route", {}, 404), ("get", "/api/nothing", {}, 404),
        ("put", "/api/jobs", {}, 405),
        ("post", "/api/jobs", {"data": {"model": "default"}}, 400),              # no file
        ("post", f"/api/jobs/{'0' * 32}/mix", {"content": b"not json"}, 400),
    ]:
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code == status, (url, response.text)
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and "\n" not in body["error"], body
    assert "file" in client.post("/api/jobs", data={"model": "default"}).json()["error"]


def test_security_headers_and_no_third_party_scripts(client):
    for url in ("/", "/static/app.js", "/api/info", "/api/jobs/x"):
        headers = client.get(url).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], url
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert client.get("/api/docs").status_code == 404          # Swagger came from a CDN
    assert client.get("/api/openapi.json").status_code == 200
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page


def test_a_token_is_required_when_set(tmp_path):
    options = ServeOptions(root=tmp_path / "jobs", token="s3cret-token")
    with TestClient(create_app(options)) as client:
        assert client.get("/api/info").status_code == 401
        assert client.get("/").status_code == 401
        assert client.get("/api/info", params={"token": "wrong"}).status_code == 401
        assert client.get("/api/info", headers={"X-Convsep-Token": "s3cret-token"}).status_code == 200
        page = client.get("/", params={"token": "s3cret-token"}, follow_redirects=False)
        assert page.status_code == 303 and "samesite=strict" in page.headers["set-cookie"].lower()
        assert client.get("/api/info").status_code == 200          # the cookie the page got
        assert client.get("/").status_code == 200


def test_serve_beyond_localhost_prints_a_token_and_a_warning():
    import httpx

    port = free_port()
    proc, lines, token = start_public_server(port)
    try:
        assert "warning: listening on 0.0.0.0" in lines[0], lines
        assert len(token) >= 20
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"{base}/api/info")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert response.status_code == 401
        assert httpx.get(f"{base}/api/info", params={"token": token}).status_code == 200
        # any Host is fine beyond localhost: the token is the check
        assert httpx.get(f"{base}/api/info", params={"token": token}, headers={"Host": "my-pc.local"}).status_code == 200
    finally:
        stop_server(proc)


def test_half_open_connections_are_closed():
    import asyncio
    import threading

    import uvicorn

    from convsep.serve.app import half_open_protocol

    async def app(scope, receive, send):
        if scope["type"] == "http":
            while (await receive()).get("more_body"):      # the whole body first, as uploads do
                pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           http=half_open_protocol(idle=0.5), lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        for opening in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"",
                        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc"):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(opening)
                started = time.monotonic()
                assert sock.recv(1000) == b"", opening          # closed by the server
                assert time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:     # a whole request is answered
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(1000).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


def test_bug9_a_refused_host_is_json_too(tmp_path):
    app = create_app(ServeOptions(root=tmp_path / "jobs"), allowed_hosts=["127.0.0.1", "localhost", "[::1]"])
    with TestClient(app, base_url="http://evil.example") as client:
        response = client.get("/api/info")
        assert response.status_code == 400 and "Host" in response.json()["error"]
        assert response.headers["x-frame-options"] == "DENY"
    with TestClient(app, base_url="http://localhost:8000") as client:
        assert client.get("/api/info").status_code == 200
    with TestClient(app, base_url="http://[::1]:8000") as client:
        assert client.get("/api/info").status_code == 200
