"""Real four-stem songs in `evaluate`: songs whose bass plays inside other are scored as bass+other."""
from __future__ import annotations

import json
import warnings

from convsep.constants import SOURCES


def test_evaluate_scores_grouped_songs_as_bass_plus_other(real_root, tmp_path):
    from convsep.evaluate.runner import evaluate

    out = tmp_path / "eval"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # its silent bass is expected: no warning
        grouped_only = evaluate(real_root, oracles="irm1", outdir=out, tracks=["1.A"], progress=False, report=False)
    assert grouped_only.ok and len(grouped_only.evaluated) == 1
    result = evaluate(real_root, oracles="irm1", outdir=out, tracks=["1.A", "3.C"], progress=False, report=False)
    assert result.ok and result.evaluated == [("3.C", "oracle-irm1")] and len(result.skipped) == 1
    grouped = json.loads((out / "oracle-irm1" / "test" / "1.A.json").read_text())
    separable = json.loads((out / "oracle-irm1" / "test" / "3.C.json").read_text())
    assert [t["name"] for t in grouped["targets"]] == ["vocals", "drums", "bass+other"]
    assert [t["name"] for t in separable["targets"]] == list(SOURCES)
    assert set(grouped["global_sdr"]) == {"vocals", "drums", "bass+other"}
    valid = evaluate(real_root, oracles="irm1", outdir=tmp_path / "valid", split="valid", progress=False, report=False)
    assert sorted(valid.tracks) == ["3.C", "Artist - Song 2"]
