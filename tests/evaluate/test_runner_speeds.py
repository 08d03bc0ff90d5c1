"""convsep evaluate with --speeds: the speed ensemble is scored under its own name."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from convsep.cli import main

RATE = 44100


def _tones(seconds: float) -> np.ndarray:
    """Stereo tones and chords below 12 kHz: nothing that a pass at speed 1.19 loses."""
    t = np.arange(int(RATE * seconds)) / RATE
    left = sum(np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 3 * t)) for f in (110, 440, 1320, 5000, 11000))
    right = sum(np.sin(2 * np.pi * f * t + 1) for f in (220, 660, 3000))
    return (0.05 * np.stack([left, right])).astype(np.float32)


def test_evaluate_scores_the_ensemble_under_its_own_name(tmp_path, make_hq_dataset, model_file, capsys):
    """Both evaluation modes: the ensemble's results never mix with the plain model's."""
    root = tmp_path / "hq"
    make_hq_dataset(root, {("test", "Alpha - One"): 2.0})
    out = tmp_path / "ev"
    common = ["--root", str(root), "--is-wav", "-m", str(model_file), "-o", str(out), "--no-progress", "--no-report"]
    assert main(["evaluate", *common]) == 0
    assert main(["evaluate", *common, "--speeds", "1,1.19"]) == 0
    methods = json.loads((out / "evaluation.json").read_text())["methods"]
    assert methods["stereo"] == {"kind": "model", "source": "stereo.pt"}
    assert methods["stereo-speeds-1-1.19"] == {"kind": "model", "source": "stereo.pt", "speeds": [1.0, 1.19]}
    plain = json.loads(next((out / "stereo").rglob("Alpha - One.json")).read_text())
    ensemble = json.loads(next((out / "stereo-speeds-1-1.19").rglob("Alpha - One.json")).read_text())
    assert plain != ensemble
    assert main(["evaluate", *common, "--speeds", "1,0.1"]) != 0
    assert "speeds must be distinct" in capsys.readouterr().err
    pair = tmp_path / "pairs" / "song"
    pair.mkdir(parents=True)
    tones = _tones(2)
    sf.write(pair / "vocals.wav", tones[0], RATE)
    sf.write(pair / "accompaniment.wav", tones[1], RATE)
    two = ["evaluate", "--root", str(tmp_path / "pairs"), "--two-stems", "vocals", "-m", str(model_file),
           "--no-bsseval", "--no-progress", "--speeds", "1,1.12", "-o", str(tmp_path / "two")]
    assert main(two) == 0
    medians = json.loads((tmp_path / "two" / "two_stems.json").read_text())["median"]
    assert list(medians) == [f"{model_file} @ speeds 1,1.12"]
