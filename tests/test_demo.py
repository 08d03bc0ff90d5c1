"""convsep.demo: the bundled demo separates better than the mixture on every source."""
from convsep.cli import main
from convsep.demo import run_demo
from convsep.models.registry import load_demo


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
