"""The torch BSSEval v4 against museval on short signals, its errors, and global SDR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsep.errors import ConvSepError
from convsep.evaluate import bss_eval_v4, bsseval, evaluate, global_sdr
from convsep.evaluate.bsseval import METRICS, frame_bounds

museval = pytest.importorskip("museval")

RATE = 44100
TOLERANCE_DB = 0.01


def _noise(rng: np.random.Generator, n_src: int, n: int, n_ch: int) -> np.ndarray:
    return rng.standard_normal((n_src, n, n_ch))


def _music(rng: np.random.Generator, n_src: int, n: int, n_ch: int) -> np.ndarray:
    """Sums of harmonic tones under slow envelopes, panned per channel, with a faint noise floor."""
    t = np.arange(n) / RATE
    out = np.zeros((n_src, n, n_ch))
    for s in range(n_src):
        for _ in range(3):
            f0 = rng.uniform(55, 880)
            env = np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 2) * t + rng.uniform(0, 6))) ** 2
            pan = rng.uniform(0.2, 1, size=n_ch)
            for h in range(1, 7):
                tone = env / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6))
                out[s] += tone[:, None] * pan
        out[s] += 1e-3 * rng.standard_normal((n, n_ch))
    return out


def _estimates(rng: np.random.Generator, refs: np.ndarray, noise: float = 0.5) -> np.ndarray:
    """Filtered, leaky, noisy versions of the references."""
    smooth = 0.6 * refs + 0.4 * np.roll(refs, 3, axis=1)
    leak = 0.3 * np.roll(refs, 1, axis=0)
    return smooth + leak + noise * refs.std() * rng.standard_normal(refs.shape)


def _assert_matches(refs, ests, window=RATE, hop=RATE) -> dict[str, np.ndarray]:
    expected = museval.metrics.bss_eval(
        refs, ests, window=window, hop=hop, compute_permutation=False,
        filters_len=512, framewise_filters=False, bsseval_sources_version=False,
    )
    got = bss_eval_v4(refs, ests, window=window, hop=hop)
    for name, want in zip(METRICS, expected[:4]):
        have = got[name].numpy()
        assert have.shape == want.shape, name
        np.testing.assert_array_equal(np.isnan(have), np.isnan(want), err_msg=name)
        np.testing.assert_array_equal(np.isinf(have), np.isinf(want), err_msg=name)
        finite = np.isfinite(want)
        assert np.abs(have[finite] - want[finite]).max(initial=0) < TOLERANCE_DB, name
    return {k: v.numpy() for k, v in got.items()}


@pytest.mark.parametrize(
    "signal, n_src, seconds, n_ch",
    [
        (_noise, 4, 3.03, 2),  # 4 stereo sources; the incomplete last second is not scored
        (_music, 3, 4.5, 2),
        (_music, 2, 2.7, 1),  # mono
        (_noise, 3, 2.0, 1),  # length a multiple of the window
    ],
)
def test_matches_museval(signal, n_src, seconds, n_ch):
    rng = np.random.default_rng(n_src * 10 + n_ch)
    refs = signal(rng, n_src, int(seconds * RATE), n_ch)
    got = _assert_matches(refs, _estimates(rng, refs))
    assert np.isfinite(got["SDR"]).all()


def test_silent_frames_are_nan_where_museval_is():
    rng = np.random.default_rng(1)
    refs = _music(rng, 3, 5 * RATE + 300, 2)
    ests = _estimates(rng, refs)
    refs[0, RATE : 2 * RATE] = 0  # a silent reference in frame 1
    ests[1, 2 * RATE : 3 * RATE] = 0  # a silent estimate in frame 2
    refs[2, 3 * RATE : 4 * RATE, 1] = -refs[2, 3 * RATE : 4 * RATE, 0]  # channels cancel: silent
    ests[0, 4 * RATE + 10 : 5 * RATE, :] = 0  # nearly silent frame: still scored
    got = _assert_matches(refs, ests)
    assert np.isnan(got["SDR"][:, 1:4]).all()
    assert np.isfinite(got["SDR"][:, [0, 4]]).all()


def test_single_short_window_and_overlap():
    rng = np.random.default_rng(2)
    refs = _noise(rng, 2, int(0.6 * RATE), 2)  # shorter than one window: one short window
    _assert_matches(refs, _estimates(rng, refs))
    refs = _music(rng, 2, int(2.3 * RATE), 1)
    _assert_matches(refs, _estimates(rng, refs), window=RATE, hop=RATE // 2)


def test_single_source_gives_infinite_sir_like_museval():
    rng = np.random.default_rng(3)
    refs = _noise(rng, 1, int(2.2 * RATE), 2)
    got = _assert_matches(refs, _estimates(rng, refs, noise=0.3))
    assert np.isinf(got["SIR"]).all()


def test_float32_tensor_input_and_museval_style_wrapper():
    rng = np.random.default_rng(4)
    refs = _noise(rng, 2, int(2.1 * RATE), 2).astype(np.float32)
    ests = _estimates(rng, refs).astype(np.float32)
    want = museval.evaluate(refs, ests)
    got = evaluate(torch.from_numpy(refs), torch.from_numpy(ests))
    for w, g in zip(want, got):
        assert isinstance(g, np.ndarray) and g.shape == w.shape
        assert np.abs(g - w).max() < TOLERANCE_DB
    padded = evaluate(refs, ests[:, : -5000], padding=True)
    assert padded[0].shape == want[0].shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    refs = torch.from_numpy(_music(rng, 4, 3 * RATE, 2))
    ests = torch.from_numpy(_estimates(rng, refs.numpy()))
    cpu = bss_eval_v4(refs, ests)
    gpu = bss_eval_v4(refs.cuda(), ests.cuda())
    for name in METRICS:
        assert gpu[name].device.type == "cuda"
        assert (gpu[name].cpu() - cpu[name]).abs().max() < TOLERANCE_DB


def test_frame_bounds_follow_museval():
    for n, window, hop in [(3 * RATE + 7, RATE, RATE), (RATE - 1, RATE, RATE), (10_000, 3000, 1500.5)]:
        framer = museval.metrics.Framing(window, hop, n)
        want = [(s.start, s.stop) for s in framer]
        assert frame_bounds(n, window, hop) == want


@pytest.mark.parametrize(
    "ref_shape, est_shape, message",
    [
        ((2, 1000, 2), (2, 999, 2), "samples"),
        ((2, 1000, 2), (2, 1000, 1), "channels"),
        ((2, 1000, 2), (3, 1000, 2), "sources"),
        ((1, 2, 1000, 2), (1, 2, 1000, 2), "shape"),
    ],
)
def test_bad_shapes_raise(ref_shape, est_shape, message):
    rng = np.random.default_rng(6)
    with pytest.raises(ConvSepError, match=message):
        bss_eval_v4(rng.standard_normal(ref_shape), rng.standard_normal(est_shape))


def test_bad_values_raise():
    rng = np.random.default_rng(7)
    refs = rng.standard_normal((2, 1000, 2))
    silent = refs.copy()
    silent[1] = 0
    with pytest.raises(ConvSepError, match="silent"):
        bss_eval_v4(silent, refs)
    with pytest.raises(ConvSepError, match="silent"):
        bss_eval_v4(refs, silent)
    broken = refs.copy()
    broken[0, 5, 0] = np.nan
    with pytest.raises(ConvSepError, match="NaN"):
        bss_eval_v4(refs, broken)
    with pytest.raises(ConvSepError, match="v4"):
        evaluate(refs, refs, mode="v3")


def test_global_sdr_matches_direct_formula():
    rng = np.random.default_rng(8)
    refs = rng.standard_normal((4, 5000, 2))
    ests = refs + 0.3 * rng.standard_normal(refs.shape)
    num = np.sum(refs**2, axis=(1, 2)) + 1e-7
    den = np.sum((refs - ests) ** 2, axis=(1, 2)) + 1e-7
    np.testing.assert_allclose(global_sdr(refs, ests).numpy(), 10 * np.log10(num / den), rtol=1e-12)
    assert global_sdr(torch.from_numpy(refs), torch.from_numpy(refs)).min() > 100
    with pytest.raises(ConvSepError, match="shape"):
        global_sdr(refs, ests[:, :-1])


def test_dense_fallback_of_the_filter_solve_matches_museval(monkeypatch):
    # a structured solve that is never accurate enough: every system takes the dense path
    monkeypatch.setattr(bsseval, "_STRUCTURED_TOLERANCE", -1.0)
    rng = np.random.default_rng(9)
    refs = _music(rng, 3, int(2.2 * RATE), 2)
    _assert_matches(refs, _estimates(rng, refs))


def test_window_longer_than_one_fft_matches_museval():
    # one window over the whole signal: filtered block by block (overlap-save)
    rng = np.random.default_rng(10)
    refs = _music(rng, 2, int(2.5 * RATE), 2)
    assert 2.5 * RATE > bsseval._MAX_BLOCK
    _assert_matches(refs, _estimates(rng, refs), window=3 * RATE, hop=3 * RATE)


def test_block_levinson_solves_the_dense_system():
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.standard_normal((3, 20_000)))
    filter_len = 40
    r = bsseval._lag_correlations((x[:, :, None],), (x[:, :, None],), filter_len, torch.device("cpu"))
    rhs = torch.from_numpy(rng.standard_normal((filter_len, 3, 5)))
    got = bsseval._toeplitz_solve(r[None], rhs[None])[0]  # (L, P, K)
    dense = bsseval._gram(r, filter_len) + bsseval._EPS * torch.eye(3 * filter_len, dtype=torch.float64)
    want = torch.linalg.solve(dense, rhs.permute(1, 0, 2).reshape(3 * filter_len, 5))
    torch.testing.assert_close(got.permute(1, 0, 2).reshape(3 * filter_len, 5), want, rtol=1e-10, atol=1e-12)
    err = bsseval._backward_error(r[None].numpy(), got[None].numpy(), rhs[None].numpy())
    assert float(err[0]) < 1e-15


@pytest.mark.parametrize("case", ["equal channels", "silent channel"])
def test_singular_gram_matrix_matches_museval(case):
    # equal channels make the Gram matrix exactly singular: the structured solve breaks down
    # and the dense path (as museval: solve, else least squares) takes over
    rng = np.random.default_rng(12)
    if case == "equal channels":
        refs = np.repeat(_music(rng, 2, int(2.2 * RATE), 1), 2, axis=2)
    else:
        refs = _music(rng, 2, int(2.2 * RATE), 2)
        refs[1, :, 1] = 0
    _assert_matches(refs, _estimates(rng, refs))
