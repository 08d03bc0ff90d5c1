"""convsep.models.registry: the bundled models and the demo's assets."""
from pathlib import Path

import pytest
import torch

from convsep.constants import SOURCES
from convsep.errors import ConvSepError
from convsep.models.modelfile import load_model
from convsep.models.registry import (
    DEFAULT_MODEL,
    DEMO_DIR,
    PRETRAINED_DIR,
    REALTIME_MODEL,
    list_models,
    load_demo,
    resolve_model_path,
)


def test_default_model_is_bundled_small_and_documented():
    path = PRETRAINED_DIR / "default.pt"
    # 9.1 M float32 parameters since the widened real-song default (docs/models.md): tens of MB
    assert path.exists() and path.stat().st_size < 40 * 2 ** 20
    model, meta = load_model(None)
    assert model.config.sources == ("vocals", "drums", "bass", "other")
    for key in ("trained_on", "recipe", "hardware", "training_minutes", "steps", "scores"):
        assert key in meta, key


def test_list_models_names_every_bundled_file_and_each_resolves():
    names = list_models()
    assert names == sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))
    assert {DEFAULT_MODEL, REALTIME_MODEL} <= set(names)
    for name in names:
        assert resolve_model_path(name) == PRETRAINED_DIR / f"{name}.pt"
    with pytest.raises(ConvSepError, match="bundled models: " + ", ".join(names)):
        resolve_model_path("no-such-model")


def test_the_demo_assets_are_the_four_sources():
    meta, references = load_demo()
    assert references.shape[:2] == (len(SOURCES), 2) and references.dtype == torch.float32
    assert {"track", "seconds"} <= set(meta)
    assert sorted(p.stem for p in DEMO_DIR.glob("*.flac")) == sorted(SOURCES)


def test_a_bundled_name_wins_over_a_local_file_unless_the_argument_looks_like_a_path(tmp_path, monkeypatch):
    """A folder `default` or a file `synthetic` in the current folder must not shadow the
    bundled models (`separate` without -m failed with "default: is a folder")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    (tmp_path / "synthetic").write_bytes(b"not a model")
    assert resolve_model_path(None) == PRETRAINED_DIR / "default.pt"
    assert resolve_model_path("default") == PRETRAINED_DIR / "default.pt"
    assert resolve_model_path("synthetic") == PRETRAINED_DIR / "synthetic.pt"
    assert load_model(None)[0] is not None
    # a path: ./name, a separator, a model suffix or a Path object
    assert resolve_model_path("./synthetic") == Path("./synthetic")
    assert resolve_model_path(Path("synthetic")) == Path("synthetic")
    (tmp_path / "mine.pt").write_bytes(b"x")
    assert resolve_model_path("mine.pt") == Path("mine.pt")
    with pytest.raises(ConvSepError, match="no such model file"):
        resolve_model_path("default.pt")
