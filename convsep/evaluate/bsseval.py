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

import math
from collections.abc import Sequence

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

ArrayLike = torch.Tensor | np.ndarray | Sequence


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


def _activity(x: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """(S, N, C) -> (S, N) bool: the channels of the source do not sum to zero at the sample."""
    return torch.cat([x[:, i : i + chunk].sum(dim=2) != 0 for i in range(0, x.shape[1], chunk)], 1)


def _validate(references: torch.Tensor, estimates: torch.Tensor) -> None:
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
    if references.numel() == 0:
        raise ConvSepError(f"empty input of shape {tuple(references.shape)}; nothing to evaluate")
    for name, x in (("references", references), ("estimates", estimates)):
        # audio sums never overflow: a non-finite sum means a NaN or infinite sample
        if not bool(torch.isfinite(x.sum())):
            raise ConvSepError(f"{name} contain NaN or infinite samples")
        silent = ~_activity(x).any(dim=1)
        if bool(silent.any()):
            idx = silent.nonzero().flatten().tolist()
            raise ConvSepError(
                f"{name} of source(s) {idx} are silent over the whole track; "
                "BSSEval is undefined for silent sources"
            )


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


def _silent_frames(x: torch.Tensor, frames: list[tuple[int, int]]) -> torch.Tensor:
    """(S, N, C) -> (T,) bool: some source sums to zero over channels throughout the frame."""
    active = _activity(x)
    return torch.stack([~active[:, s:e].any(dim=1).all() for s, e in frames])


def _gather_blocks(
    signals: Sequence[torch.Tensor], starts: list[int], width: int, lo: list[int], hi: list[int]
) -> torch.Tensor:
    """(S_i, N, C) tensors -> (B, sum S_i*C, width) float64: rows (signal, source, channel)
    holding ``[start, start + width)`` of each block, zero outside ``[lo, hi)``."""
    rows = sum(x.shape[0] * x.shape[2] for x in signals)
    device = signals[0].device
    out = torch.empty(len(starts), rows, width, dtype=torch.float64, device=device)
    for i, (start, a, b) in enumerate(zip(starts, lo, hi)):
        first, last = min(max(start, a), start + width), max(min(start + width, b), start)
        out[i, :, : first - start] = 0
        out[i, :, last - start :] = 0
        row = 0
        for x in signals:
            n = x.shape[0] * x.shape[2]
            part = x[:, first:last, :].permute(0, 2, 1).reshape(n, last - first)
            out[i, row : row + n, first - start : last - start] = part
            row += n
    return out


def _lag_correlations(
    x: Sequence[torch.Tensor], y: Sequence[torch.Tensor], n_lags: int
) -> torch.Tensor:
    """(S_i, N, C) tensors -> (P, Q, n_lags) float64: r[p, q, k] = sum_n x[p, n + k] y[q, n].

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
    acc = torch.zeros(n_x, n_y, n_fft // 2 + 1, dtype=torch.complex128, device=x[0].device)
    for i in range(0, len(starts_all), per_batch):
        starts = starts_all[i : i + per_batch]
        lo, hi = [0] * len(starts), [n] * len(starts)
        xf = torch.fft.rfft(_gather_blocks(x, starts, block + n_lags - 1, lo, hi), n=n_fft)
        yf = torch.fft.rfft(_gather_blocks(y, starts, block, lo, hi), n=n_fft).conj_physical()
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


def _distortion_filters(
    refs: torch.Tensor, ests: torch.Tensor, n_src: int, filter_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-track least-squares filters.

    refs, ests: (S, N, C) -> ``all_refs`` (S*C, L, S*C): filter from reference channel (j, c)
    to estimate channel (k, d), over all references; ``own_ref`` (S, C, L, C): from
    reference channel (k, c) to estimate channel (k, d), over source k's reference only.
    """
    n_ch = refs.shape[2]
    r = _lag_correlations((refs, ests), (refs,), filter_len)
    p = n_src * n_ch
    gram = _gram(r[:p], filter_len)
    # D[(j, c, m), (k, d)] = r[(k, d), (j, c), m]
    rhs = r[p:].permute(1, 2, 0).reshape(p * filter_len, p)
    all_refs = _solve(gram, rhs).reshape(p, filter_len, p)

    m = n_ch * filter_len
    blocks = torch.arange(n_src, device=refs.device) * m
    rows = blocks[:, None] + torch.arange(m, device=refs.device)  # (S, C*L)
    own_gram = gram[rows[:, :, None], rows[:, None, :]]  # (S, C*L, C*L)
    own_rhs = rhs.reshape(n_src, m, n_src, n_ch).diagonal(dim1=0, dim2=2).permute(2, 0, 1)
    own_ref = _solve(own_gram, own_rhs).reshape(n_src, n_ch, filter_len, n_ch)
    return all_refs, own_ref


# ------------------------------------------------------------------------------- windows
def _window_energies(
    refs: torch.Tensor,
    ests: torch.Tensor,
    bounds: list[tuple[int, int]],
    all_refs: torch.Tensor,
    own_ref: torch.Tensor,
) -> torch.Tensor:
    """Energies of the decomposition in every window, for windows of one common length.

    refs, ests: (S, N, C); bounds: T windows ``(start, stop)`` of equal length; filters as
    returned by ``_distortion_filters``. Returns (7, S, T) float64: ``|s|^2, |e - s|^2,
    |Pj - s|^2, |Pj|^2, |Pa - Pj|^2, |Pa|^2, |e - Pa|^2`` where ``s`` is the true image,
    ``e`` the estimate, ``Pj`` the projection on the source's own reference and ``Pa`` on all
    references. Windows are cut into blocks of at most ``_MAX_BLOCK`` output samples and
    filtered by overlap-save.
    """
    n_src, n_ch, filter_len, _ = own_ref.shape
    n_in = n_src * n_ch
    lead = filter_len - 1
    out_len = bounds[0][1] - bounds[0][0] + lead
    n_blocks = -(-out_len // _MAX_BLOCK)
    block = -(-out_len // n_blocks)
    n_fft = _fast_len(block + lead)

    spec_all = torch.fft.rfft(all_refs.permute(0, 2, 1), n=n_fft)  # (P, Q, F)
    spec_own = torch.fft.rfft(own_ref.permute(0, 1, 3, 2), n=n_fft)  # (S, C, C, F)

    jobs = [(t, s + k * block, s, e) for t, (s, e) in enumerate(bounds) for k in range(n_blocks)]
    energies = torch.zeros(7, n_src, len(bounds), dtype=torch.float64, device=refs.device)
    per_batch = max(1, _BATCH_SAMPLES // n_fft)
    for i in range(0, len(jobs), per_batch):
        frame, start, lo, hi = zip(*jobs[i : i + per_batch])
        nb = len(start)
        chunk = _gather_blocks((refs,), [a - lead for a in start], block + lead, lo, hi)
        true = chunk[..., lead:]
        est = _gather_blocks((ests,), start, block, lo, hi)
        # outputs reach L - 1 samples past the window end, where the true image and estimate
        # are zero-padded
        out_pos = torch.tensor(start, device=refs.device)[:, None] + torch.arange(
            block, device=refs.device
        )
        tail = (out_pos < torch.tensor(hi, device=refs.device)[:, None] + lead)[:, None, :]
        spec = torch.fft.rfft(chunk, n=n_fft)  # (B, P, F)

        own = torch.zeros(nb, n_src, n_ch, spec.shape[-1], dtype=spec.dtype, device=spec.device)
        per_src = spec.view(nb, n_src, n_ch, -1)
        for c in range(n_ch):
            own.addcmul_(per_src[:, :, c, None, :], spec_own[None, :, c])
        proj_own = torch.fft.irfft(own.view(nb, n_in, -1), n=n_fft)[..., lead : lead + block]
        proj_own = proj_own * tail
        if n_src == 1:
            proj_all = proj_own
        else:
            mixed = torch.zeros(nb, n_in, spec.shape[-1], dtype=spec.dtype, device=spec.device)
            for p in range(n_in):
                mixed.addcmul_(spec[:, p, None, :], spec_all[None, p])
            proj_all = torch.fft.irfft(mixed, n=n_fft)[..., lead : lead + block] * tail

        def energy(sig: torch.Tensor) -> torch.Tensor:
            return sig.square().reshape(nb, n_src, n_ch * block).sum(dim=-1).T  # (S, B)

        terms = torch.stack(
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
        index = torch.tensor(frame, device=refs.device)
        energies.index_add_(2, index, terms)
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
            (samples,) are read as one channel / one source. Tensor, ndarray or nested lists.
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
    refs = _as_tensor(references, "references")
    ests = _as_tensor(estimates, "estimates", device=refs.device)
    _validate(refs, ests)
    n_src, n_samples, _ = refs.shape
    device = refs.device

    frames = frame_bounds(n_samples, window, hop)
    silent = _silent_frames(refs, frames) | _silent_frames(ests, frames)
    all_refs, own_ref = _distortion_filters(refs, ests, n_src, filter_len)

    energies = torch.empty(7, n_src, len(frames), dtype=torch.float64, device=device)
    for length in sorted({e - s for s, e in frames}):
        sel = [t for t, (s, e) in enumerate(frames) if e - s == length]
        energies[:, :, sel] = _window_energies(
            refs, ests, [frames[t] for t in sel], all_refs, own_ref
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
