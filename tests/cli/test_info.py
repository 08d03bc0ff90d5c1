"""`convsep info`: a model file's config and metadata."""

from convsep.cli import main


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_prints_config_and_metadata(capsys, model_file):
    code, out, _ = run(["info", model_file], capsys)
    assert code == 0
    assert "678,536 parameters" in out and "trained_on: nothing" in out
