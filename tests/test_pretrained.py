"""The bundled default model and demo: loadable with no arguments, and better than the mixture."""
import torch

import convsep
from convsep.cli import main
from convsep.demo import load_demo, run_demo
from convsep.modelfile import PRETRAINED_DIR, load_model


def test_default_model_is_bundled_small_and_documented():
    path = PRETRAINED_DIR / "default.pt"
    assert path.exists() and path.stat().st_size < 16 * 2 ** 20          # a few MB
    model, meta = load_model(None)
    assert model.config.sources == ("vocals", "drums", "bass", "other")
    for key in ("trained_on", "recipe", "hardware", "training_minutes", "steps", "scores"):
        assert key in meta, key


def test_demo_separation_beats_the_mixture_on_every_source(tmp_path, capsys):
    result = run_demo(tmp_path, model=None)
    for source in result.sources:
        assert result.sdr[source] > result.mixture_sdr[source] + 1.0, (source, result.sdr, result.mixture_sdr)
    assert result.figure.exists() and result.figure.stat().st_size > 10_000
    meta, references = load_demo()
    stems = sorted(p.name for p in result.folder.glob("*.wav"))
    assert stems == ["bass.wav", "drums.wav", "mixture.wav", "other.wav", "vocals.wav"]
    assert main(["demo", "-o", str(tmp_path)]) == 2  # outputs exist: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_separate_without_a_model_argument_uses_the_default(tmp_path):
    _, references = load_demo()
    mixture = references.sum(0)[:, :44100 * 3]
    stems = convsep.separate(mixture, 44100)
    total = sum(stems.values())
    assert torch.allclose(total, mixture, atol=1e-4)
