"""BSSEval v4 in torch, matching museval's per-frame numbers.

This re-implements the "images" variant of BSSEval v4 that museval computes for SiSEC 2018
(``museval.evaluate`` with ``mode="v4"``): time-invariant multichannel distortion filters of
``filter_len`` taps are estimated once on the whole track by least squares, then every window
of the track is decomposed into the true source image, spatial distortion, interference and
artifacts, and four energy ratios (SDR, ISR, SIR, SAR) are reported per window.

Notation (S sources, C channels, L = filter_len taps, N samples):

* ``x[j, c]``: reference of source ``j``, channel ``c``; ``e[j, c]``: its estimate.
* Gram matrix ``G[(j, c, a), (i, d, b)] = <x[j, c] delayed by a, x[i, d] delayed by b>``,
  ``(S*C*L, S*C*L)``, from correlations at lags ``0 .. L-1``.
* Right-hand sides ``D[(j, c, m), (k, d)] = <x[j, c] delayed by m, e[k, d]>``.
* Filters of estimate ``k`` on all references: ``solve(G + eps*I, D[:, k])``; on its own
  reference only: the same with the ``(k, k)`` block of ``G``.
* In a window ``[s, t)`` the references are cut to the window, filtered (full convolution,
  ``t - s + L - 1`` samples) and compared with the true image and the estimate, both cut to
  the window and zero-padded by ``L - 1`` samples.

The whole-track correlations are accumulated block by block in the frequency domain, and the
windows are filtered by overlap-save in batches, so memory stays bounded on long tracks. All
arithmetic runs in float64 on the device of the inputs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from convsep.errors import ConvSepError

__all__ = ["bss_eval_v4", "evaluate", "frame_bounds", "METRICS"]

METRICS = ("SDR", "ISR", "SIR", "SAR")

# museval adds machine epsilon to the diagonal of the Gram matrix before solving.
_EPS = float(np.finfo(np.float64).eps)
# Working-set budget for one batch of blocks, in float64 samples per signal (about 2**20).
_BATCH_SAMPLES = 1 << 17
_MAX_BLOCK = 1 << 16
_CORR_FFT = 1 << 13



@runtime_checkable
class SignalReader(Protocol):
    """A (sources, samples, channels) signal that is read back in time ranges instead of being
    held in memory (see ``convsep.evaluate.spill``)."""

    shape: tuple[int, int, int]
    device: torch.device

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)``: (sources, stop - start, channels), floating point."""
        ...


ArrayLike = torch.Tensor | np.ndarray | Sequence
Signal = torch.Tensor | SignalReader


# ----------------------------------------------------------------------------------- inputs
def _as_tensor(x: ArrayLike, name: str, device: torch.device | None = None) -> torch.Tensor:
    """Any array-like -> floating tensor (sources, samples, channels), museval's layout."""
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.asarray(x))
    if device is not None:
        x = x.to(device)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim == 1:
        x = x[None, :, None]
    elif x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ConvSepError(
            f"{name} must have shape (sources, samples, channels), got {tuple(x.shape)}"
        )
    return x


def _as_signal(x: ArrayLike | SignalReader, name: str, device: torch.device | None = None) -> Signal:
    """Array-likes as ``_as_tensor``; a ``SignalReader`` is used as it is."""
    if isinstance(x, SignalReader) and not isinstance(x, (torch.Tensor, np.ndarray)):
        if len(x.shape) != 3:
            raise ConvSepError(
                f"{name} must have shape (sources, samples, channels), got {tuple(x.shape)}"
            )
        return x
    return _as_tensor(x, name, device)


def _span(x: Signal, start: int, stop: int) -> torch.Tensor:
    """Samples ``[start, stop)`` of a (S, N, C) signal: a tensor or an object with ``read``."""
    return x[:, start:stop] if isinstance(x, torch.Tensor) else x.read(start, stop)


def _validate(references: Signal, estimates: Signal) -> None:
    """Shapes only; the values are checked by ``_scan``."""
    if references.shape[0] != estimates.shape[0]:
        raise ConvSepError(
            f"got {estimates.shape[0]} estimated sources for {references.shape[0]} references; "
            "give one estimate per reference source"
        )
    if references.shape[1] != estimates.shape[1]:
        raise ConvSepError(
            f"estimates have {estimates.shape[1]} samples but references have "
            f"{references.shape[1]}; trim or pad the estimates to the reference length"
        )
    if references.shape[2] != estimates.shape[2]:
        raise ConvSepError(
            f"estimates have {estimates.shape[2]} channels but references have "
            f"{references.shape[2]}; use the same channel layout"
        )
    if math.prod(references.shape) == 0:
        raise ConvSepError(f"empty input of shape {tuple(references.shape)}; nothing to evaluate")


def _scan(
    x: Signal, name: str, frames: list[tuple[int, int]], device: torch.device, chunk: int = 1 << 20
) -> torch.Tensor:
    """One pass over a (S, N, C) signal -> (T,) bool: the frames where some source is silent
    (its channels sum to zero throughout the frame).

    Raises ConvSepError for NaN or infinite samples and for a source silent over the whole track.
    """
    n_src, n_samples, _ = x.shape
    starts, stops = [f[0] for f in frames], [f[1] for f in frames]
    ever = torch.zeros(n_src, dtype=torch.bool, device=device)
    in_frame = torch.zeros(n_src, len(frames), dtype=torch.bool, device=device)
    for a in range(0, n_samples, chunk):
        b = min(n_samples, a + chunk)
        part = _span(x, a, b).to(device)
        summed = part[..., 0].clone()
        for c in range(1, part.shape[2]):
            summed += part[..., c]
        # audio sums never overflow: a non-finite sum means a NaN or infinite sample
        if not bool(torch.isfinite(summed.sum())):
            raise ConvSepError(f"{name} contain NaN or infinite samples")
        active = summed != 0
        ever |= active.any(dim=1)
        for t in range(bisect.bisect_right(stops, a), bisect.bisect_left(starts, b)):
            lo, hi = max(starts[t], a) - a, min(stops[t], b) - a
            in_frame[:, t] |= active[:, lo:hi].any(dim=1)
    if not bool(ever.all()):
        idx = (~ever).nonzero().flatten().tolist()
        raise ConvSepError(
            f"{name} of source(s) {idx} are silent over the whole track; "
            "BSSEval is undefined for silent sources"
        )
    return ~in_frame.all(dim=0)


# ---------------------------------------------------------------------------------- framing
def frame_bounds(n_samples: int, window: float, hop: float) -> list[tuple[int, int]]:
    """The ``[start, stop)`` sample range of every window, exactly as museval frames them.

    There are ``floor((n_samples - window + hop) / hop)`` windows when ``window < n_samples``,
    otherwise one window over the whole signal; samples after the last full window are not
    evaluated (they still count for the filters).
    """
    if window < n_samples:
        n_win = int(np.floor((n_samples - window + hop) / hop))
    else:
        n_win = 1
    bounds = []
    for t in range(n_win):
        start = t * hop
        if np.isnan(start) or np.isinf(start):
            start = 0
        stop = min(t * hop + window, n_samples)
        if np.isnan(stop) or np.isinf(stop):
            stop = n_samples
        bounds.append((int(np.floor(start)), int(np.floor(stop))))
    return bounds


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes all FFT back ends handle quickly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _gather_blocks(
    signals: Sequence[Signal],
    starts: list[int],
    width: int,
    lo: list[int],
    hi: list[int],
    device: torch.device,
) -> torch.Tensor:
    """(S_i, N, C) signals -> (B, sum S_i*C, width) float64: rows (signal, source, channel)
    holding ``[start, start + width)`` of each block, zero outside ``[lo, hi)``."""
    rows = sum(x.shape[0] * x.shape[2] for x in signals)
    out = torch.empty(len(starts), rows, width, dtype=torch.float64, device=device)
    for i, (start, a, b) in enumerate(zip(starts, lo, hi)):
        first, last = min(max(start, a), start + width), max(min(start + width, b), start)
        out[i, :, : first - start] = 0
        out[i, :, last - start :] = 0
        row = 0
        for x in signals:
            n = x.shape[0] * x.shape[2]
            part = _span(x, first, last).permute(0, 2, 1).reshape(n, last - first)
            out[i, row : row + n, first - start : last - start] = part
            row += n
    return out


def _lag_correlations(
    x: Sequence[Signal], y: Sequence[Signal], n_lags: int, device: torch.device
) -> torch.Tensor:
    """(S_i, N, C) signals -> (P, Q, n_lags) float64: r[p, q, k] = sum_n x[p, n + k] y[q, n].

    Rows ``p`` (``q``) run over the sources and channels of the tensors in ``x`` (``y``).

    Linear (not circular) correlation over the whole signals, accumulated over blocks of the
    signals as cross-spectra, with a single inverse FFT at the end.
    """
    n = x[0].shape[1]
    # small blocks keep the (P, Q, F) accumulator in cache
    n_fft = _fast_len(max(min(n + n_lags - 1, _CORR_FFT), 2 * n_lags))
    block = n_fft - n_lags + 1
    starts_all = list(range(0, n, block))
    per_batch = max(1, _BATCH_SAMPLES // n_fft)
    n_x, n_y = (sum(t.shape[0] * t.shape[2] for t in group) for group in (x, y))
    acc = torch.zeros(n_x, n_y, n_fft // 2 + 1, dtype=torch.complex128, device=device)
    # y's rows are the first rows of x's when x starts with y's signals
    shared = len(y) <= len(x) and all(a is b for a, b in zip(x, y))
    for i in range(0, len(starts_all), per_batch):
        starts = starts_all[i : i + per_batch]
        # one copy of the batch's span, zero past the end, cut into overlapping blocks
        width = starts[-1] - starts[0] + block + n_lags - 1
        span = _gather_blocks(x, starts[:1], width, [0], [n], device)[0]  # (P, width)
        xf = torch.fft.rfft(span.unfold(-1, block + n_lags - 1, block).transpose(0, 1), n=n_fft)
        if not shared:
            span = _gather_blocks(y, starts[:1], width, [0], [n], device)[0]
        y_blocks = span[:n_y, : len(starts) * block].unflatten(-1, (len(starts), block))
        yf = torch.fft.rfft(y_blocks.transpose(0, 1), n=n_fft).conj_physical()
        for b in range(len(starts)):
            acc.addcmul_(xf[b, :, None, :], yf[b, None, :, :])
    return torch.fft.irfft(acc, n=n_fft)[..., :n_lags]


def _gram(r: torch.Tensor, filter_len: int) -> torch.Tensor:
    """(P, P, L) lag correlations -> (P*L, P*L) Gram matrix of the delayed references.

    ``G[(p, a), (q, b)] = r[p, q, b - a]`` for ``b >= a`` and ``r[q, p, a - b]`` otherwise.
    """
    n = r.shape[0]
    r0 = 0.5 * (r[:, :, 0] + r[:, :, 0].T)
    both = torch.cat(
        [r.transpose(0, 1).flip(-1)[..., :-1], r0[..., None], r[..., 1:]], dim=-1
    )  # (P, P, 2L-1), lag b - a at index L-1 + b - a
    chans = torch.arange(n, device=r.device)
    lags = torch.arange(filter_len, device=r.device)
    diff = filter_len - 1 + lags[None, :] - lags[:, None]  # (a, b)
    g = both[chans[:, None, None, None], chans[None, None, :, None], diff[None, :, None, :]]
    return g.reshape(n * filter_len, n * filter_len)  # rows (p, a), columns (q, b)


def _solve(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(..., M, M), (..., M, K) -> (..., M, K): solve(G + eps I, D).

    Cholesky where ``G + eps I`` is numerically positive definite, LU otherwise, and least
    squares on ``G`` if LU meets an exactly singular matrix (museval's fallback).
    """
    reg = gram.clone()
    reg.diagonal(dim1=-2, dim2=-1).add_(_EPS)
    factor, info = torch.linalg.cholesky_ex(reg)
    if not bool((info != 0).any()):
        return torch.cholesky_solve(rhs, factor)
    sol, info = torch.linalg.solve_ex(reg, rhs)
    bad = info != 0
    if bool(bad.any()):
        sol = torch.where(bad[..., None, None], torch.linalg.pinv(gram) @ rhs, sol)
    return sol


class _Levinson:
    """Whittle's multichannel Levinson recursion for block-Toeplitz systems ``(T + eps I) x = y``.

    r: (B, P, P, L) lag correlations, one system per batch entry, with
    ``T[(a, p), (b, q)] = R(b - a)[p, q]``, ``R(k) = r[..., k]`` and ``R(-k) = R(k)^T``.
    The forward and backward predictors of growing order cost O(L^2 P^3) instead of the
    O(L^3 P^3) of a dense factorisation; the backward predictor of every order is kept
    (O(L^2 P^2) numbers), so that ``solve`` can be run on several right-hand sides. Runs in
    numpy: the L - 1 steps are many small products, where numpy's per-call cost is lower
    than torch's.
    """

    def __init__(self, r: np.ndarray):
        nb, n_ch, _, n_lag = r.shape
        self.r = r
        lagged = np.moveaxis(r, 3, 1)  # (B, L, P, P): R(k)
        eye = np.eye(n_ch)
        self.zero_lag = 0.5 * (lagged[:, 0] + np.swapaxes(lagged[:, 0], -1, -2)) + _EPS * eye
        width = (n_lag - 1) * n_ch
        # block rows [R(1) .. R(L-1)] and [R(-(L-1)) .. R(-1)], as (B, P, (L-1) P)
        pos = np.ascontiguousarray(lagged[:, 1:].transpose(0, 2, 1, 3).reshape(nb, n_ch, width))
        neg = np.swapaxes(lagged[:, :0:-1], -1, -2).transpose(0, 2, 1, 3)
        self.neg = np.ascontiguousarray(neg.reshape(nb, n_ch, width))
        # the backward predictor is right-aligned: extending it by one block costs nothing
        fwd = np.zeros((nb, n_lag * n_ch, n_ch))
        bwd = np.zeros((nb, n_lag * n_ch, n_ch))
        fwd[:, :n_ch] = eye
        bwd[:, width:] = eye
        fwd_err, bwd_err = self.zero_lag, self.zero_lag
        self.steps = []  # order n + 1: (backward predictor (B, (n + 2) P, P), its error (B, P, P))
        for n in range(n_lag - 1):
            lo, m = (n_lag - 2 - n) * n_ch, (n + 1) * n_ch
            fwd_out = self.neg[:, :, lo:] @ fwd[:, :m]  # what order n misses at block row n + 1
            bwd_out = pos[:, :, :m] @ bwd[:, lo + n_ch :]  # ... and at block row 0
            fwd_gain = np.linalg.solve(bwd_err, fwd_out)
            bwd_gain = np.linalg.solve(fwd_err, bwd_out)
            fwd_step = bwd[:, lo + n_ch :] @ fwd_gain
            bwd_step = fwd[:, :m] @ bwd_gain
            fwd[:, n_ch : m + n_ch] -= fwd_step
            bwd[:, lo : lo + m] -= bwd_step
            fwd_err = fwd_err - bwd_out @ fwd_gain
            bwd_err = bwd_err - fwd_out @ bwd_gain
            self.steps.append((bwd[:, lo:].copy(), bwd_err))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """rhs: (B, L, P, K) block rows -> x: (B, L, P, K)."""
        nb, n_lag, n_ch, n_rhs = rhs.shape
        sol = np.zeros((nb, n_lag * n_ch, n_rhs))
        sol[:, :n_ch] = np.linalg.solve(self.zero_lag, rhs[:, 0])
        for n, (bwd, bwd_err) in enumerate(self.steps):
            lo, m = (n_lag - 2 - n) * n_ch, (n + 1) * n_ch
            missed = self.neg[:, :, lo:] @ sol[:, :m]
            sol[:, : m + n_ch] += bwd @ np.linalg.solve(bwd_err, rhs[:, n + 1] - missed)
        return sol.reshape(nb, n_lag, n_ch, n_rhs)


def _toeplitz_product(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(T + eps I) x`` for the block-Toeplitz ``T`` of ``_Levinson``, lag by lag.

    r: (B, P, P, L); x: (B, L, P, K) -> (B, L, P, K).
    """
    nb, n_lag, n_ch, n_rhs = x.shape
    xt = np.ascontiguousarray(x.transpose(0, 2, 1, 3))  # (B, P, L, K)
    out = np.zeros_like(xt)
    zero_lag = 0.5 * (r[..., 0] + np.swapaxes(r[..., 0], -1, -2))
    out += (zero_lag @ xt.reshape(nb, n_ch, -1)).reshape(xt.shape)
    for d in range(1, n_lag):
        # T[a, a + d] = R(d) and T[a + d, a] = R(d)^T
        lag = r[..., d]
        ahead = xt[:, :, d:].reshape(nb, n_ch, -1)
        behind = xt[:, :, : n_lag - d].reshape(nb, n_ch, -1)
        out[:, :, : n_lag - d] += (lag @ ahead).reshape(nb, n_ch, n_lag - d, n_rhs)
        out[:, :, d:] += (np.swapaxes(lag, -1, -2) @ behind).reshape(nb, n_ch, n_lag - d, n_rhs)
    return out.transpose(0, 2, 1, 3) + _EPS * x


def _backward_error(r: np.ndarray, x: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """(B,) normwise backward error ``|Tx - y| / (|T| |x| + |y|)`` (Frobenius norms)."""
    n_lag = r.shape[-1]
    weights = np.arange(n_lag, 0, -1, dtype=np.float64)  # block diagonal k holds L - k blocks
    lag_norms = np.square(r).sum(axis=(1, 2))  # (B, L)
    t_norm = np.sqrt(weights[0] * lag_norms[:, 0] + 2 * (weights[1:] * lag_norms[:, 1:]).sum(1))
    nb = x.shape[0]
    resid = np.linalg.norm((_toeplitz_product(r, x) - rhs).reshape(nb, -1), axis=1)
    return resid / (t_norm * np.linalg.norm(x.reshape(nb, -1), axis=1)
                    + np.linalg.norm(rhs.reshape(nb, -1), axis=1))


# A structured solve is kept when its backward error is this small (a dense Cholesky reaches
# about 1e-17 on these systems); otherwise the dense factorisation is used.
_STRUCTURED_TOLERANCE = 1e-15


def _toeplitz_solve(r: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(B, P, P, L), (B, L, P, K) -> (B, L, P, K): solve(G + eps I, rhs) per batch entry, G the
    Gram matrix of the delayed signals.

    Block Levinson and one step of iterative refinement (the residual taken lag by lag in
    float64), which brings ill-conditioned systems to the backward error of a dense Cholesky;
    the dense path (Cholesky, then LU, then least squares) for any system still above
    ``_STRUCTURED_TOLERANCE``.
    """
    r_np, rhs_np = r.cpu().numpy(), rhs.cpu().numpy()
    try:
        with np.errstate(all="ignore"):  # a breakdown shows in the backward error
            levinson = _Levinson(r_np)
            sol = levinson.solve(rhs_np)
            sol += levinson.solve(rhs_np - _toeplitz_product(r_np, sol))
            error = _backward_error(r_np, sol, rhs_np)
    except np.linalg.LinAlgError:  # an exactly singular leading block (e.g. equal channels)
        sol, error = np.zeros(rhs_np.shape), np.full(len(rhs_np), np.inf)
    bad = np.flatnonzero(~(error <= _STRUCTURED_TOLERANCE)).tolist()
    sol = torch.from_numpy(sol).to(r.device)
    for b in bad:
        n_ch, n_lag = r.shape[1], r.shape[-1]
        dense_rhs = rhs[b].permute(1, 0, 2).reshape(n_ch * n_lag, -1)  # rows (p, a)
        dense = _solve(_gram(r[b], n_lag), dense_rhs)
        sol[b] = dense.view(n_ch, n_lag, -1).permute(1, 0, 2)
    return sol


def _distortion_filters(
    refs: Signal, ests: Signal, filter_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-track least-squares filters.

    refs, ests: (S, N, C) -> ``all_refs`` (S*C, L, S*C): filter from reference channel (j, c)
    to estimate channel (k, d), over all references; ``own_ref`` (S, C, L, C): from
    reference channel (k, c) to estimate channel (k, d), over source k's reference only.
    """
    n_src, _, n_ch = refs.shape
    r = _lag_correlations((refs, ests), (refs,), filter_len, device)
    p = n_src * n_ch
    ref_corr = r[:p]
    # D[(j, c, m), (k, d)] = r[(k, d), (j, c), m], as block rows m: (L, (j, c), (k, d))
    rhs = r[p:].permute(2, 1, 0)
    all_refs = _toeplitz_solve(ref_corr[None], rhs[None])[0].permute(1, 0, 2)

    own = torch.arange(n_src, device=device)[:, None] * n_ch + torch.arange(n_ch, device=device)
    own_corr = ref_corr[own[:, :, None], own[:, None, :]]  # (S, C, C, L)
    own_rhs = rhs[:, own[:, :, None], own[:, None, :]].permute(1, 0, 2, 3)  # (S, L, C, C)
    own_ref = _toeplitz_solve(own_corr, own_rhs).permute(0, 2, 1, 3)
    return all_refs, own_ref


# ------------------------------------------------------------------------------- windows
def _energy_terms(
    true: torch.Tensor,
    est: torch.Tensor,
    proj_own: torch.Tensor,
    proj_all: torch.Tensor,
    energy,
) -> torch.Tensor:
    """The seven energies of the decomposition, stacked: (7, S, B)."""
    return torch.stack(
        [
            energy(true),
            energy(est - true),
            energy(proj_own - true),
            energy(proj_own),
            energy(proj_all - proj_own),
            energy(proj_all),
            energy(est - proj_all),
        ]
    )


def _project(
    spec: torch.Tensor, spec_own: torch.Tensor, spec_all: torch.Tensor, n_src: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference spectra (B, S*C, F) -> spectra of the projections on the own reference and
    on all references, both (B, S*C, F); filter spectra as in ``_window_energies``."""
    nb, n_in, n_freq = spec.shape
    n_ch = n_in // n_src
    own = torch.zeros(nb, n_src, n_ch, n_freq, dtype=spec.dtype, device=spec.device)
    per_src = spec.view(nb, n_src, n_ch, n_freq)
    for c in range(n_ch):
        own.addcmul_(per_src[:, :, c, None, :], spec_own[None, :, c])
    own = own.view(nb, n_in, n_freq)
    if n_src == 1:
        return own, own
    mixed = torch.zeros(nb, n_in, n_freq, dtype=spec.dtype, device=spec.device)
    for p in range(n_in):
        mixed.addcmul_(spec[:, p, None, :], spec_all[None, p])
    return own, mixed


def _frames(x: Signal, bounds: Sequence[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """(S, N, C) signal, B windows of one length n -> (B, S*C, n) float64."""
    n_src, _, n_ch = x.shape
    length = bounds[0][1] - bounds[0][0]
    out = torch.empty(len(bounds), n_src, n_ch, length, dtype=torch.float64, device=device)
    for i, (start, stop) in enumerate(bounds):
        out[i].copy_(_span(x, start, stop).permute(0, 2, 1))
    return out.view(len(bounds), n_src * n_ch, length)


def _window_energies(
    refs: Signal,
    ests: Signal,
    bounds: list[tuple[int, int]],
    all_refs: torch.Tensor,
    own_ref: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """Energies of the decomposition in every window, for windows of one common length.

    refs, ests: (S, N, C); bounds: T windows ``(start, stop)`` of equal length; filters as
    returned by ``_distortion_filters``. Returns (7, S, T) float64: ``|s|^2, |e - s|^2,
    |Pj - s|^2, |Pj|^2, |Pa - Pj|^2, |Pa|^2, |e - Pa|^2`` where ``s`` is the true image,
    ``e`` the estimate, ``Pj`` the projection on the source's own reference and ``Pa`` on all
    references, over the window and the ``L - 1`` samples after it.

    A window whose filtered length fits one FFT of at most ``_MAX_BLOCK`` samples is projected
    in the frequency domain and its energies are taken there (Parseval); longer windows are
    cut into blocks, filtered by overlap-save and measured in the time domain.
    """
    n_src, n_ch, filter_len, _ = own_ref.shape
    lead = filter_len - 1
    out_len = bounds[0][1] - bounds[0][0] + lead
    if out_len > _MAX_BLOCK:
        return _long_window_energies(refs, ests, bounds, all_refs, own_ref, device)
    n_fft = _fast_len(out_len)
    spec_all = torch.fft.rfft(all_refs.permute(0, 2, 1), n=n_fft)  # (P, Q, F)
    spec_own = torch.fft.rfft(own_ref.permute(0, 1, 3, 2), n=n_fft)  # (S, C, C, F)
    # Parseval over a one-sided spectrum: |x|^2 = (2 sum_f |X_f|^2 - |X_0|^2 - |X_nyq|^2) / n
    edges = [0, n_fft // 2] if n_fft % 2 == 0 else [0]

    def energy(spec: torch.Tensor) -> torch.Tensor:
        total = torch.linalg.vector_norm(torch.view_as_real(spec).flatten(-2), dim=-1).square()
        edge = torch.view_as_real(spec[..., edges]).square().sum(dim=(-1, -2))
        power = (2 * total - edge) / n_fft  # (B, S*C)
        return power.view(-1, n_src, n_ch).sum(dim=-1).T  # (S, B)

    energies = torch.empty(7, n_src, len(bounds), dtype=torch.float64, device=device)
    per_batch = max(1, _BATCH_SAMPLES // n_fft)
    for i in range(0, len(bounds), per_batch):
        batch = bounds[i : i + per_batch]
        true = torch.fft.rfft(_frames(refs, batch, device), n=n_fft)  # zero-padded: no wrap
        est = torch.fft.rfft(_frames(ests, batch, device), n=n_fft)
        proj_own, proj_all = _project(true, spec_own, spec_all, n_src)
        energies[:, :, i : i + len(batch)] = _energy_terms(true, est, proj_own, proj_all, energy)
    return energies


def _long_window_energies(
    refs: Signal,
    ests: Signal,
    bounds: list[tuple[int, int]],
    all_refs: torch.Tensor,
    own_ref: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """``_window_energies`` for windows longer than one FFT: blocks of at most
    ``_MAX_BLOCK`` output samples, filtered by overlap-save."""
    n_src, n_ch, filter_len, _ = own_ref.shape
    lead = filter_len - 1
    out_len = bounds[0][1] - bounds[0][0] + lead
    n_blocks = -(-out_len // _MAX_BLOCK)
    block = -(-out_len // n_blocks)
    n_fft = _fast_len(block + lead)

    spec_all = torch.fft.rfft(all_refs.permute(0, 2, 1), n=n_fft)  # (P, Q, F)
    spec_own = torch.fft.rfft(own_ref.permute(0, 1, 3, 2), n=n_fft)  # (S, C, C, F)

    jobs = [(t, s + k * block, s, e) for t, (s, e) in enumerate(bounds) for k in range(n_blocks)]
    energies = torch.zeros(7, n_src, len(bounds), dtype=torch.float64, device=device)
    per_batch = max(1, _BATCH_SAMPLES // n_fft)
    for i in range(0, len(jobs), per_batch):
        frame, start, lo, hi = zip(*jobs[i : i + per_batch])
        nb = len(start)
        chunk = _gather_blocks((refs,), [a - lead for a in start], block + lead, lo, hi, device)
        true = chunk[..., lead:]
        est = _gather_blocks((ests,), start, block, lo, hi, device)
        # outputs reach L - 1 samples past the window end, where the true image and estimate
        # are zero-padded
        out_pos = torch.tensor(start, device=device)[:, None] + torch.arange(block, device=device)
        tail = (out_pos < torch.tensor(hi, device=device)[:, None] + lead)[:, None, :]
        spec_own_proj, spec_all_proj = _project(
            torch.fft.rfft(chunk, n=n_fft), spec_own, spec_all, n_src
        )
        proj_own = torch.fft.irfft(spec_own_proj, n=n_fft)[..., lead : lead + block] * tail
        if n_src == 1:
            proj_all = proj_own
        else:
            proj_all = torch.fft.irfft(spec_all_proj, n=n_fft)[..., lead : lead + block] * tail

        def energy(sig: torch.Tensor) -> torch.Tensor:
            return sig.square().reshape(nb, n_src, n_ch * block).sum(dim=-1).T  # (S, B)  # noqa: B023 - used in this pass only

        terms = _energy_terms(true, est, proj_own, proj_all, energy)
        energies.index_add_(2, torch.tensor(frame, device=device), terms)
    return energies


def _safe_db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """10 log10(num / den), +inf where den == 0 (as museval)."""
    ratio = 10 * torch.log10(num / den.clamp_min(torch.finfo(den.dtype).tiny))
    return torch.where(den == 0, torch.full_like(ratio, math.inf), ratio)


# ----------------------------------------------------------------------------------- API
def bss_eval_v4(
    references: ArrayLike,
    estimates: ArrayLike,
    window: float = 44100,
    hop: float = 44100,
    filter_len: int = 512,
) -> dict[str, torch.Tensor]:
    """BSSEval v4 images metrics per window, as ``museval.evaluate(mode="v4")``.

    Args:
        references: true source images, (sources, samples, channels); (sources, samples) and
            (samples,) are read as one channel / one source. Tensor, ndarray, nested lists, or
            a ``SignalReader`` (read in time ranges, never whole).
        estimates: estimated images, same shape as ``references``.
        window: window length in samples (``math.inf`` for one window over the whole track).
        hop: hop between windows in samples.
        filter_len: taps of the distortion filters.

    Returns:
        ``{"SDR", "ISR", "SIR", "SAR"}``, each (sources, windows) float64 in dB on the device
        of ``references``; NaN in windows where any reference or estimate is silent.

    Raises:
        ConvSepError: shapes that do not match, empty or non-finite input, a source that is
            silent over the whole track.
    """
    if not filter_len >= 1 or not window > 0 or not hop > 0:
        raise ConvSepError(
            f"window ({window}), hop ({hop}) and filter_len ({filter_len}) must be positive"
        )
    filter_len = int(filter_len)
    refs = _as_signal(references, "references")
    device = refs.device
    ests = _as_signal(estimates, "estimates", device=device)
    _validate(refs, ests)
    n_src, n_samples, _ = refs.shape

    frames = frame_bounds(n_samples, window, hop)
    silent = _scan(refs, "references", frames, device) | _scan(ests, "estimates", frames, device)
    all_refs, own_ref = _distortion_filters(refs, ests, filter_len, device)

    energies = torch.empty(7, n_src, len(frames), dtype=torch.float64, device=device)
    for length in sorted({e - s for s, e in frames}):
        sel = [t for t, (s, e) in enumerate(frames) if e - s == length]
        energies[:, :, sel] = _window_energies(
            refs, ests, [frames[t] for t in sel], all_refs, own_ref, device
        )

    true, err, spat, own, interf, proj, artif = energies
    scores = {
        "SDR": _safe_db(true, err),
        "ISR": _safe_db(true, spat),
        "SIR": _safe_db(own, interf),
        "SAR": _safe_db(proj, artif),
    }
    return {k: v.masked_fill(silent[None, :], math.nan) for k, v in scores.items()}


def evaluate(
    references: ArrayLike,
    estimates: ArrayLike,
    win: float = 1 * 44100,
    hop: float = 1 * 44100,
    mode: str = "v4",
    padding: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop-in for ``museval.evaluate``: returns ``(SDR, ISR, SIR, SAR)`` ndarrays (sources, windows).

    Only ``mode="v4"`` is supported. museval pads or truncates estimates to the reference
    length by default; here a length mismatch raises unless ``padding=True`` is asked for.
    """
    if mode != "v4":
        raise ConvSepError(f"only BSSEval mode 'v4' is supported, got {mode!r}")
    refs = _as_tensor(references, "references")
    ests = _as_tensor(estimates, "estimates", device=refs.device)
    if padding and ests.shape[1] != refs.shape[1]:
        n = refs.shape[1]
        ests = torch.nn.functional.pad(ests[:, :n], (0, 0, 0, max(0, n - ests.shape[1])))
    scores = bss_eval_v4(refs, ests, window=win, hop=hop)
    return tuple(scores[k].cpu().numpy() for k in METRICS)
