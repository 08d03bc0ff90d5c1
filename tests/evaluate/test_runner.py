"""convsep evaluate / convsep report: oracles, museval-compatible JSON, resume, failures, reports."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.evaluate.oracles import ORACLES, oracle_estimates, parse_oracles
from convsep.evaluate.report import load_results, median_of_medians, render_report
from convsep.evaluate.runner import evaluate, score
from convsep.models import ConvSep, preset
from convsep.models.modelfile import save_model

SOURCES = ("vocals", "drums", "bass", "other")


TRACKS = {("test", "Alpha - One"): 2.0, ("test", "Beta - Two"): 2.0}


METHODS = ["model", "oracle-irm1", "mixture"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("model") / "model.pt", ConvSep(preset("convsep-stereo")), {})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, make_hq_dataset) -> Path:
    root = tmp_path_factory.mktemp("hq")
    make_hq_dataset(root, TRACKS)
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, dataset, model_file):
    outdir = tmp_path_factory.mktemp("eval") / "run"
    result = evaluate(dataset, models=[model_file], oracles="irm1,mixture", outdir=outdir, progress=False)
    return outdir, result


def test_oracles_partition_the_mixture():
    x = torch.randn(4, 2, 9000)
    for kind in ("irm1", "irm2"):
        est = oracle_estimates(x, kind)
        assert est.shape == x.shape
        torch.testing.assert_close(est.sum(0), x.sum(0), atol=1e-4, rtol=0)
    ibm = oracle_estimates(x, "ibm")
    assert ibm.shape == x.shape and torch.isfinite(ibm).all()
    assert torch.equal(oracle_estimates(x, "mixture")[2], x.sum(0))
    assert parse_oracles("IRM1, mixture,irm1") == ["irm1", "mixture"]
    assert parse_oracles(None) == [] and set(ORACLES) == {"irm1", "irm2", "ibm", "mixture"}
    with pytest.raises(ConvSepError, match="unknown oracle"):
        parse_oracles("irm3")


def test_score_refuses_wrong_shapes():
    refs = torch.randn(4, 2, 44100)
    with pytest.raises(ConvSepError, match="shape"):
        score(refs, refs[..., :-10])
    with pytest.raises(ConvSepError, match="shape"):
        score(refs, refs[:, :1])


def test_evaluate_writes_results_and_oracle_beats_mixture(evaluated):
    outdir, result = evaluated
    assert result.ok and sorted(result.methods) == sorted(METHODS)
    assert len(result.evaluated) == len(TRACKS) * len(METHODS) and not result.skipped
    for method in METHODS:
        for _, track in TRACKS:
            assert (outdir / method / "test" / f"{track}.json").is_file()
        assert (outdir / method / "frames.csv").is_file() and (outdir / method / "global_sdr.csv").is_file()
    mom = median_of_medians(load_results([outdir]).frames)
    for source in SOURCES:
        assert mom["SDR"][("oracle-irm1", source)] > mom["SDR"][("mixture", source)] + 3
    assert (outdir / "report.md").is_file()
    assert {p.name for p in outdir.glob("*.png")} == {f"boxplot_{m}.png" for m in ("sdr", "sir", "isr", "sar")}


def test_json_is_readable_by_museval(evaluated):
    museval = pytest.importorskip("museval")
    import pandas as pd
    from jsonschema import validate

    outdir, _ = evaluated
    store = museval.EvalStore()
    store.add_eval_dir(outdir / "oracle-irm1")
    assert set(store.df["track"]) == {name for _, name in TRACKS}
    assert set(store.df["target"]) == set(SOURCES)
    agg = store.agg_frames_tracks_scores()
    ours = median_of_medians(load_results([outdir]).frames)
    for source in SOURCES:
        assert agg[(source, "SDR")] == pytest.approx(ours["SDR"][("oracle-irm1", source)], abs=1e-6)
    methods = museval.MethodStore()
    methods.add_eval_dir(outdir / "mixture")
    assert set(methods.df["method"]) == {"mixture"}
    schema = museval.TrackStore("x").schema
    data = json.loads((outdir / "model" / "test" / "Alpha - One.json").read_text())
    validate(data, schema)
    frames = pd.read_csv(outdir / "model" / "frames.csv")
    assert list(frames.columns) == ["track", "target", "metric", "time", "score"]
    assert len(frames) == len(store.df)


def test_resume_skips_finished_tracks(evaluated, tmp_path, dataset, model_file):
    outdir = tmp_path / "resumed"
    shutil.copytree(evaluated[0], outdir)
    again = evaluate(dataset, models=[model_file], oracles="irm1,mixture", outdir=outdir,
                     progress=False, report=False)
    assert again.ok and not again.evaluated and len(again.skipped) == len(TRACKS) * len(METHODS)
    before = (outdir / "mixture" / "test" / "Beta - Two.json").read_text()
    (outdir / "mixture" / "test" / "Beta - Two.json").unlink()
    third = evaluate(dataset, oracles="mixture", outdir=outdir, progress=False, report=False)
    assert third.evaluated == [("Beta - Two", "mixture")]
    assert (outdir / "mixture" / "test" / "Beta - Two.json").read_text() == before


def _poison(path: Path) -> None:
    """A NaN sample: the track lists fine and fails when it is read."""
    import numpy as np
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32")
    audio[10] = np.nan
    sf.write(path, audio, rate, subtype="FLOAT")


def test_failing_track_is_reported_and_others_continue(tmp_path, make_stems_folder, capsys):
    root = tmp_path / "stems"
    make_stems_folder(root, {"full": SOURCES, "broken": SOURCES}, seconds=1.0)
    _poison(root / "broken" / "drums.wav")
    outdir = tmp_path / "out"
    rc = main(["evaluate", "--root", str(root), "--oracle", "mixture",
               "-o", str(outdir), "--jobs", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2   # some tracks failed: exit 2, like any user-facing error
    failed = [line for line in err.splitlines() if "error:" in line]
    assert len(failed) == 1 and "broken" in failed[0] and "NaN" in failed[0]
    assert (outdir / "mixture" / "test" / "full.json").is_file()
    assert not (outdir / "mixture" / "test" / "broken.json").exists()
    assert (outdir / "report.md").is_file()


def test_a_source_silent_over_a_track_is_undefined_and_the_others_are_scored(tmp_path, make_stems_folder, capsys):
    """BSSEval is undefined for a silent reference (museval: NaN); it used to fail the track."""
    import json
    import math

    root = tmp_path / "stems"
    make_stems_folder(root, {"partial": ("vocals", "bass", "drums")}, seconds=2.0)
    outdir = tmp_path / "out"
    with pytest.warns(UserWarning, match="other silent over the whole track"):
        rc = main(["evaluate", "--root", str(root), "--oracle", "irm1", "-o", str(outdir), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((outdir / "oracle-irm1" / "test" / "partial.json").read_text())
    sdr = {t["name"]: [f["metrics"]["SDR"] for f in t["frames"]] for t in data["targets"]}
    assert all(math.isnan(v) for v in sdr["other"]) and math.isnan(data["global_sdr"]["other"])
    assert all(math.isfinite(v) for name in ("vocals", "bass", "drums") for v in sdr[name])


def test_every_track_failing_still_reports_each(tmp_path, make_stems_folder, capsys):
    root = tmp_path / "stems"
    make_stems_folder(root, {"x": SOURCES, "y": SOURCES}, seconds=0.5)
    for track in ("x", "y"):
        _poison(root / track / "bass.wav")
    rc = main(["evaluate", "--root", str(root), "--oracle", "irm1", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2   # some tracks failed: exit 2, like any user-facing error
    assert sum("error:" in line for line in err.splitlines()) == 2 and "Traceback" not in err
    assert not (tmp_path / "out" / "report.md").exists()


def test_cli_evaluate_and_report(evaluated, dataset, tmp_path, capsys):
    outdir = tmp_path / "cli"
    rc = main(["evaluate", "--root", str(dataset), "--is-wav", "--oracle", "mixture", "--tracks", "Alpha - One",
               "--max-seconds", "1", "-o", str(outdir), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "mixture" in out and "evaluated 1 track-method pair" in out
    assert json.loads((outdir / "evaluation.json").read_text())["max_seconds"] == 1.0

    report = tmp_path / "compare.md"
    rc = main(["report", str(evaluated[0]), str(outdir), "--out", str(report), "--plots", str(tmp_path / "plots")])
    assert rc == 0
    text = report.read_text()
    for label in ["run/model", "run/oracle-irm1", "run/mixture", "cli/mixture", *SOURCES, "SIR", "ISR", "SAR"]:
        assert label in text
    assert "Oracle IRM1" in text and "Open-Unmix UMX" in text  # MUSDB18 layout: published numbers
    assert len(list((tmp_path / "plots").glob("boxplot_*.png"))) == 4
    rc = main(["report", str(outdir), "--no-published"])
    out = capsys.readouterr().out
    assert rc == 0 and "| mixture |" in out and "Open-Unmix" not in out


def test_report_of_one_folder(evaluated):
    report = render_report([evaluated[0]])
    for method in METHODS:
        assert f"| {method} |" in report.markdown
        assert method in report.terminal
    assert report.markdown_path is None and report.plots == []


@pytest.mark.parametrize("args, message", [
    (["--root", "{missing}", "--oracle", "mixture"], "does not exist"),
    (["--root", "{empty}", "--layout", "folder", "--oracle", "mixture"], "no source file"),
    (["--root", "{data}", "--oracle", "irm9"], "unknown oracle"),
    (["--root", "{data}", "-m", "{missing}.pt"], "no such model file"),
    (["--root", "{data}"], "nothing to evaluate"),
    (["--root", "{data}", "--oracle", "mixture", "--tracks", "Nope"], "no track named"),
])
def test_bad_inputs_give_one_line_errors(args, message, tmp_path, dataset, capsys):
    (tmp_path / "empty" / "song").mkdir(parents=True)
    (tmp_path / "empty" / "song" / "notes.txt").write_text("no audio")
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "data": dataset}
    args = [a.format(**paths) for a in args]
    rc = main(["evaluate", *args, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_report_of_missing_folder_fails_cleanly(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such evaluation folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err


def test_model_file_named_dots_is_refused_not_written_beside_outdir(tmp_path, dataset, capsys):
    import shutil

    from convsep.models.registry import PRETRAINED_DIR

    shutil.copy(PRETRAINED_DIR / "synthetic.pt", tmp_path / "...pt")
    rc = main(["evaluate", "--root", str(dataset), "--is-wav", "-m", str(tmp_path / "...pt"),
               "-o", str(tmp_path / "out")])
    assert rc == 2 and "method name '..'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["...pt"]
