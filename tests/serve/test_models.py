"""The web app's model menu: ``GET /api/models`` (quality on the real validation set, speed)
and an upload choosing its model."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from convsep.models.modelfile import read_model_file  # noqa: E402
from convsep.serve.app import ServeOptions, create_app  # noqa: E402
from tests.serve.test_app import song, wait_done, wav_bytes  # noqa: E402


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(ServeOptions(root=tmp_path / "jobs"))) as client:
        yield client


def test_models_lists_the_offline_bundled_models_with_their_numbers(client):
    response = client.get("/api/models")
    assert response.status_code == 200
    models = response.json()["models"]
    names = [m["name"] for m in models]
    assert names[0] == "default" and "synthetic" in names
    assert "realtime" not in names and "realtime-small" not in names     # streaming models are not offered
    assert [m["name"] for m in models if m["default"]] == ["default"]
    for model in models:
        meta = read_model_file(model["name"])["metadata"]
        assert model["quality_db"] == meta["scores"]["real_validation_mean"]
        assert model["stems"] == meta["scores"]["real_validation_global_sdr_median"]
        assert set(model["stems"]) == {"vocals", "drums", "bass", "other"}
        assert model["seconds_per_minute"] == meta["speed"]["seconds_per_minute_of_stereo"]
        assert model["streaming"] is False
    default = models[0]
    assert default["quality_db"] > 3.0 and 0 < default["seconds_per_minute"] < 2.0   # the real-song default
    info = client.get("/api/info").json()["models"]          # the page's menu reads the same numbers
    assert [m["name"] for m in info] == names and info[0]["quality_db"] == default["quality_db"]


def test_a_streaming_model_named_with_m_is_marked(tmp_path):
    with TestClient(create_app(ServeOptions(models=[None, "realtime"], root=tmp_path / "jobs"))) as client:
        models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["realtime"]["streaming"] is True and models["default"]["streaming"] is False
    assert models["realtime"]["seconds_per_minute"] is None
    assert models["realtime"]["real_time_factor_one_thread"] > 0 and models["realtime"]["quality_db"] > 0


def test_upload_runs_with_the_chosen_model(client):
    audio = song(2.0, seed=3)
    response = client.post("/api/jobs", files={"file": ("a.wav", wav_bytes(audio), "audio/wav")},
                           data={"model": "synthetic"})
    assert response.status_code == 201, response.text
    job = wait_done(client, response.json()["id"])
    assert job["status"] == "done" and job["model"] == "synthetic", job
    response = client.post("/api/jobs", files={"file": ("b.wav", wav_bytes(audio), "audio/wav")})
    assert response.status_code == 201
    assert client.get(f"/api/jobs/{response.json()['id']}").json()["model"] == "default"


@pytest.mark.parametrize("name", ["nope", "realtime", "../default", "default.pt", "/etc/passwd"])
def test_upload_refuses_a_model_not_offered(client, name):
    response = client.post("/api/jobs", files={"file": ("a.wav", wav_bytes(song(1.0)), "audio/wav")},
                           data={"model": name})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and "unknown model" in body["error"] and "default" in body["error"], body
    assert client.get("/api/jobs").json()["jobs"] == []
