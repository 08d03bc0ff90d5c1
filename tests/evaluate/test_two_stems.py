"""convsep.evaluate.two_stems: `convsep evaluate --two-stems` on MIR-1K-like data."""
import json

import numpy as np
import pytest


def test_evaluate_two_stems_mode(fake_mir1k, tmp_path, capsys):
    """`convsep evaluate --two-stems vocals` on MIR-1K's layout: held-out singers, two levels."""
    from convsep.cli import main

    code = main(["evaluate", "--root", str(fake_mir1k), "--two-stems", "vocals", "--split", "valid",
                 "--levels", "0,-5", "-o", str(tmp_path / "ev"), "--no-progress"])
    assert code == 0
    summary = json.loads((tmp_path / "ev" / "two_stems.json").read_text())
    row = summary["median"]["default"]
    assert row["mixtures"] == 8                      # 2 held-out singers x 2 clips x 2 levels
    for key in ("vocals_global_sdr", "accompaniment_global_sdr", "vocals_sdr", "accompaniment_sdr"):
        assert np.isfinite(row[key])
    lines = (tmp_path / "ev" / "two_stems.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 and "-5.0" in lines[-1]
    assert "vocals_global_sdr" in capsys.readouterr().out
    assert main(["evaluate", "--root", str(tmp_path), "--two-stems", "vocals", "-o", str(tmp_path / "x")]) != 0


@pytest.mark.parametrize("args,message", [
    (["--two-stems", "drums"], "only --two-stems vocals"),
    (["--two-stems", "vocals", "--limit", "-1"], "--limit must be"),
    (["--two-stems", "vocals", "--limit", "0"], "--limit must be"),
    (["--two-stems", "vocals", "--levels", "nan"], "--levels: each level must be a number of dB"),
    (["--two-stems", "vocals", "--levels", "1000000"], "--levels: each level must be a number of dB"),
])
def test_two_stem_arguments_are_checked(fake_mir1k, tmp_path, capsys, args, message):
    from convsep.cli import main

    code = main(["evaluate", "--root", str(fake_mir1k), *args, "-o", str(tmp_path / "out"), "--no-bsseval"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
