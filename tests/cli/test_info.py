"""`convsep info`: a model file's config and metadata."""
import pytest
import torch

from convsep.cli import main
from convsep.models import ConvSep, preset
from convsep.models.modelfile import save_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "stereo.pt"
    save_model(path, ConvSep(preset("convsep-stereo")), {"trained_on": "nothing (random weights)"})
    return path


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_prints_config_and_metadata(capsys, model_file):
    code, out, _ = run(["info", model_file], capsys)
    assert code == 0
    assert "678,536 parameters" in out and "trained_on: nothing" in out
