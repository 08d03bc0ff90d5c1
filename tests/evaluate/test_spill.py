"""Evaluation with signals on disk (convsep.evaluate.spill): the same numbers as from arrays."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.data import list_tracks, load_sources
from convsep.evaluate import bss_eval_v4, global_sdr
from convsep.evaluate.bsseval import METRICS
from convsep.evaluate.oracles import ORACLES, oracle_chunks, oracle_estimates
from convsep.evaluate.runner import model_estimates, write_model_estimates
from convsep.evaluate.spill import SpilledSignal, load_references
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator

RATE = 44100


def _spill(x: torch.Tensor, directory) -> SpilledSignal:
    """(S, C, N) -> the same samples in a SpilledSignal."""
    signal = SpilledSignal(x.shape[0], x.shape[2], x.shape[1], directory)
    signal.write(0, x)
    return signal


def test_spilled_signal_reads_back_what_was_written(tmp_path):
    x = torch.randn(3, 2, 5000)
    with SpilledSignal(3, 5000, 2, tmp_path) as signal:
        signal.write(0, x[..., :1234])
        signal.write(1234, x[..., 1234:])
        assert torch.equal(signal.read(100, 4000), x[..., 100:4000].transpose(1, 2))
        assert torch.equal(signal.read(4900, 6000), x[..., 4900:].transpose(1, 2))  # clipped
        assert torch.equal(signal.source(1).read(0, 10), x[1:2, :, :10].transpose(1, 2))
        assert torch.equal(signal.to_tensor(), x)
        signal.write(10, torch.ones(1, 1, 5), sources=slice(2, 3), channels=slice(1, 2))
        assert signal.read(10, 15)[2, :, 1].eq(1).all()
        assert os.listdir(tmp_path) == []  # unnamed: nothing to clean up
        with pytest.raises(ValueError):
            signal.write(4999, x[..., :2])


def test_bsseval_and_global_sdr_from_disk_equal_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    refs = torch.from_numpy(rng.standard_normal((3, 2, int(2.4 * RATE))).astype(np.float32))
    ests = 0.7 * refs + 0.3 * refs.roll(1, 0) + 0.2 * torch.randn(refs.shape)
    refs[1, :, RATE // 2 : RATE + 100] = 0  # a silent frame
    want = bss_eval_v4(refs.transpose(1, 2), ests.transpose(1, 2))
    with _spill(refs, tmp_path) as r, _spill(ests, tmp_path) as e:
        got = bss_eval_v4(r, e)
        for name in METRICS:
            np.testing.assert_array_equal(got[name].numpy(), want[name].numpy())
        for j in range(3):
            assert torch.equal(global_sdr(r.source(j), e.source(j)),
                               global_sdr(refs[j:j + 1].transpose(1, 2), ests[j:j + 1].transpose(1, 2)))


@pytest.mark.parametrize("kind", ORACLES)
def test_oracle_pieces_from_disk_equal_whole_estimates(tmp_path, kind):
    x = torch.randn(4, 2, 600_000) * 0.1  # several chunks of frames
    want = oracle_estimates(x, kind)
    with _spill(x, tmp_path) as signal:
        pieces = list(oracle_chunks(signal, kind))
    assert [start for start, _ in pieces] == np.cumsum([0] + [p.shape[-1] for _, p in pieces[:-1]]).tolist()
    assert torch.equal(torch.cat([p for _, p in pieces], dim=-1), want)


@pytest.mark.parametrize("channels", [2, 1])
def test_model_estimates_written_piece_by_piece_equal_whole(tmp_path, channels):
    torch.manual_seed(0)
    config = preset("convsep-stereo" if channels == 2 else "deepconvsep")
    separator = Separator(ConvSep(config), segment_seconds=1.0)
    x = torch.randn(4, 2, int(3.3 * RATE)) * 0.1
    want = model_estimates(separator, x)
    with _spill(x, tmp_path) as refs, SpilledSignal(4, x.shape[2], 2, tmp_path) as out:
        write_model_estimates(separator, refs, out)
        assert torch.equal(out.to_tensor(), want)


def test_references_decoded_block_by_block_equal_load_sources(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "song"
    folder.mkdir()
    n = 300_000
    sf.write(folder / "vocals.wav", rng.uniform(-1, 1, (n, 2)), RATE, subtype="PCM_16")
    sf.write(folder / "drums.flac", rng.uniform(-1, 1, (n - 900, 1)), RATE)  # mono, shorter
    sf.write(folder / "other.wav", rng.uniform(-1, 1, (n, 3)).astype(np.float32), RATE, subtype="FLOAT")
    (track,) = list_tracks(tmp_path, subset="train", layout="folder")
    want = load_sources(track, rate=RATE)
    with load_references(track, RATE, directory=tmp_path) as refs:
        assert refs.shape == (4, n, 2)
        assert torch.equal(refs.to_tensor(), torch.from_numpy(want))
    with load_references(track, RATE, max_samples=1000, directory=tmp_path) as refs:
        assert torch.equal(refs.to_tensor(), torch.from_numpy(want[..., :1000]))
    # another rate goes through load_sources (resampling) and gives the same
    with load_references(track, 22050, directory=tmp_path) as refs:
        assert torch.equal(refs.to_tensor(), torch.from_numpy(load_sources(track, rate=22050)))


def test_full_disk_while_spilling_is_a_one_line_error(tmp_path):
    import resource

    from convsep.errors import ConvSepError

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal = SpilledSignal(1, 1 << 20, 1, tmp_path)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
        with pytest.raises(ConvSepError, match="temporary file"):
            signal.write(0, torch.ones(1, 1, 1 << 20))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.close()
