"""convsep.cli.failures: the one error path (exit codes in --help, an unexpected exception is one
line unless --debug, no traceback from the entry point)."""
import subprocess
import sys

import pytest

from convsep.cli import main


def test_unexpected_exception_is_one_line_with_where_to_report_and_debug_shows_the_traceback(monkeypatch, capsys):
    import convsep.cli.info as info

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(info, "handler", broken)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error: ZeroDivisionError: boom" in err
    assert "report" in err and "--debug" in err and "Traceback" not in err
    assert main(["--debug", "info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err


@pytest.mark.parametrize("argv,flag", [(["--help"], "--debug"), (["separate", "--help"], "--allow-truncated")])
def test_exit_codes_are_documented_in_help(capsys, argv, flag):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out = capsys.readouterr().out
    assert stop.value.code == 0 and flag in out
    assert "exit codes: 0 success; 2 error" in " ".join(out.split())


def test_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "convsep", "separate", str(tmp_path / "missing.wav")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


@pytest.mark.parametrize("argv,expected", [
    (["separate", "--jobs", "x", "a.wav"], "convsep separate: error: argument --jobs/-j: invalid int value: 'x'"),
    (["separate", "--bogus", "a.wav"], "convsep separate: error: unrecognized arguments: --bogus"),
    (["separate"], "convsep separate: error: the following arguments are required: IN"),
    (["info", "--nope"], "convsep info: error: unrecognized arguments: --nope"),
])
def test_argument_errors_are_one_line_naming_the_command(capsys, argv, expected):
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(expected) and len(err.strip().splitlines()) == 1, err
    assert "usage:" not in err
