"""convsep.training.step: the fused training step (same loss and gradients as plain autograd),
micro-batches, look-ahead, band-limited and grouped losses, bf16; a small model learns."""

import numpy as np
import pytest
import torch

import convsep.training.step as step_module
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.separator import Separator
from convsep.training.step import LossComputer, excerpt_samples


def _toy_sources(seconds: float = 4.0, rate: int = 44100) -> np.ndarray:
    """(4, 2, n): a vibrato voice, noise-burst drums, a low bass line and a chord."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    vocals = 0.3 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    drums = 0.5 * np.exp(-((t * 4) % 1) * 20) * rng.standard_normal(len(t))
    bass = 0.4 * np.sin(2 * np.pi * 55 * t * (1 + (t % 2 > 1) * 0.5))
    other = 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3
    mono = np.stack([vocals, drums, bass, other]).astype(np.float32)
    return np.stack([mono, 0.8 * mono], axis=1)


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10((ref ** 2).sum() / (((ref - est) ** 2).sum() + 1e-12)))


@pytest.mark.parametrize("target", ["magnitude", "phase-sensitive"])
def test_training_a_small_model_raises_sdr(target):
    torch.manual_seed(0)
    sources = torch.from_numpy(_toy_sources())
    mixture = sources.sum(0)
    model = ConvSep(preset("convsep-stereo", conv1_filters=24, conv2_filters=16, bottleneck=64))

    def mean_sdr() -> float:
        model.eval()
        out = Separator(model).separate_tensor(mixture).numpy()
        model.train()
        return float(np.mean([_sdr(sources[i].numpy(), out[i]) for i in range(4)]))

    before = mean_sdr()
    loss_of = LossComputer(model, "mse", target=target)
    optimiser = torch.optim.Adam(model.parameters(), 2e-3)
    length = excerpt_samples(model.config)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        offsets = torch.randint(0, sources.shape[-1] - length, (8,), generator=generator).tolist()
        batch = torch.stack([sources[..., o:o + length] for o in offsets])
        loss = loss_of(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = mean_sdr()
    assert after > before + 6.0, (before, after)


SMALL_REAL = {"conv1_filters": 12, "conv2_filters": 6, "bottleneck": 16}


def _grads(model, loss_of, x, **kw):
    model.zero_grad()
    loss = loss_of(model, x, **kw)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("target,level_balance", [("magnitude", False), ("phase-sensitive", False),
                                                   ("phase-sensitive", True)])
@pytest.mark.parametrize("name", ["convsep-stereo", "deepconvsep", "convsep-plus"])
@pytest.mark.parametrize("setting", ["plain", "band", "groups", "lookahead"])
def test_fused_loss_and_gradients_equal_autograd(name, setting, target, level_balance):
    torch.manual_seed(0)
    model = ConvSep(preset(name, **SMALL_REAL)).double()
    x = torch.randn(3, 4, model.config.channels, excerpt_samples(model.config, 2), dtype=torch.float64) * 0.1
    x[0, 1] = 0                                                           # a silent source
    kw = {"band": {"bandwidth_bins": torch.tensor([100, 513, 186])},
          "groups": {"groups": ((0,), (1, 2, 3))}}.get(setting, {})
    lookahead = 1 if setting == "lookahead" else None
    weighted = name == "convsep-plus"
    settings = dict(weighted=weighted, lookahead=lookahead, target=target, level_balance=level_balance)
    ref = LossComputer(model, "mse", fused=False, **settings)
    fused = LossComputer(model, "mse", fused=True, **settings)
    assert fused.fused and not ref.fused
    for lc in (ref, fused):
        if lc.weights is not None:
            lc.weights = lc.weights.double()
    loss_ref, grads_ref = _grads(model, ref, x, **kw)
    loss_fused, grads_fused = _grads(model, fused, x, **kw)
    assert loss_fused == pytest.approx(loss_ref, rel=1e-10)
    for a, b in zip(grads_ref, grads_fused):
        assert (a - b).abs().max() <= 1e-8 * a.abs().max()


def test_phase_sensitive_error_is_the_complex_error_up_to_what_no_mask_changes():
    """|m X - S|^2 - (m |X| - P)^2 does not depend on the real mask m: training towards the
    projections P is training the masked complex STFT towards each source's STFT. The
    projections sum to |X|, and the limited ones are the best masks in [0, 1] times |X|."""
    torch.manual_seed(3)
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL)).double()
    x = torch.randn(2, 4, 2, excerpt_samples(model.config, 1), dtype=torch.float64) * 0.1
    stft = step_module.STFT(model.config.n_fft, model.config.hop)
    mix, projections = step_module.batch_to_blocks(x, stft, model.config.context, phase_sensitive=True)
    spec = stft.forward_padded(x)[..., :model.config.context]               # (B, S, C, F, T)
    spec = spec.permute(0, 1, 2, 4, 3)                                       # (B, S, C, T, F)
    mixture = spec.sum(1, keepdim=True)
    assert torch.allclose(projections.sum(1), mix, atol=1e-12)
    assert (projections < 0).any() and (projections > mix[:, None]).any()   # sources cancel somewhere
    masks = torch.rand(2, *projections.shape, dtype=torch.float64)
    gaps = [(m * mixture - spec).abs() ** 2 - (m * mix[:, None] - projections) ** 2 for m in masks]
    assert torch.allclose(gaps[0], gaps[1], atol=1e-12)
    best = step_module.limit_to_mixture(projections, mix) / mix[:, None]
    for m in masks:
        assert ((best * mixture - spec).abs() <= (m * mixture - spec).abs() + 1e-12).all()


@pytest.mark.parametrize("fused", [False, True])
def test_level_balance_weighs_a_quiet_excerpt_as_a_loud_one(fused):
    """With a model whose masks do not depend on the level (no biases: every layer is then
    positively homogeneous, but for the masks' eps), an excerpt played 20 dB quieter adds as
    much to the balanced loss as before, and 100 times less to the plain MSE."""
    torch.manual_seed(4)
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL)).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.zero_()
    x = torch.randn(2, 4, 2, excerpt_samples(model.config, 1), dtype=torch.float64) * 0.1
    quiet = x.clone()
    quiet[1] *= 0.1
    balanced = LossComputer(model, "mse", fused=fused, target="phase-sensitive", level_balance=True)
    plain = LossComputer(model, "mse", fused=fused, target="phase-sensitive")
    assert balanced(model, quiet).item() == pytest.approx(balanced(model, x).item(), rel=1e-3)
    per_excerpt = [plain(model, x[i:i + 1]).item() for i in range(2)]
    assert plain(model, quiet).item() == pytest.approx((per_excerpt[0] + per_excerpt[1] / 100) / 2, rel=1e-3)
    with pytest.raises(ValueError, match="level balance needs the mse or l1 loss"):
        LossComputer(model, "deepconvsep", level_balance=True)


def test_micro_batches_give_the_whole_batch_gradient():
    torch.manual_seed(1)
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL)).double()
    x = torch.randn(5, 4, 2, excerpt_samples(model.config, 1), dtype=torch.float64) * 0.1
    results = []
    for micro in (0, 2):
        model.zero_grad()
        loss = LossComputer(model, "mse", micro_batch=micro).backward(model, x)
        results.append((loss, [p.grad.clone() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        assert (a - b).abs().max() <= 1e-9 * a.abs().max()


def test_band_limited_examples_ignore_what_lies_above_their_band():
    """A 16 kHz recording's missing top octaves must not teach the model anything."""
    torch.manual_seed(2)
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL))
    L = excerpt_samples(model.config, 1)
    t = torch.arange(L) / 44100
    low = 0.2 * torch.sin(2 * torch.pi * 440 * t)
    high = 0.2 * torch.sin(2 * torch.pi * 15000 * t)
    a = torch.zeros(1, 4, 2, L)
    a[0, 0], a[0, 1] = low, high
    b = a.clone()
    b[0, 0] += high                      # the same mixture energy at 15 kHz, now called vocals
    b[0, 1] -= high
    lc = LossComputer(model, "mse")
    band = torch.tensor([186])           # 8 kHz at n_fft 1024
    assert lc(model, a, band).item() == pytest.approx(lc(model, b, band).item(), rel=1e-5)
    assert lc(model, a).item() != pytest.approx(lc(model, b).item(), rel=1e-3)


def test_lookahead_scores_only_the_causal_frame():
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL))
    x = torch.randn(2, 4, 2, excerpt_samples(model.config, 1)) * 0.1
    lc = LossComputer(model, "mse", lookahead=3)
    assert lc._position() == slice(26, 27)
    with pytest.raises(ConvSepError, match="--lookahead must be from 0 to 29"):     # exit 2, not a bug
        LossComputer(model, "mse", lookahead=30)
    assert torch.isfinite(lc(model, x))


def test_bf16_products_keep_the_loss_and_gradients_of_fp32(monkeypatch):
    """precision="bf16" (bfloat16 operands in the matrix products) against float32: the loss
    within 1% and every parameter's gradient pointing the same way (cosine > 0.99)."""
    monkeypatch.setattr(step_module, "cpu_has_native_bf16", lambda: True)   # emulated if need be
    torch.manual_seed(0)
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL))
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(4, 4, 2, excerpt_samples(model.config, 2)) * 0.1
    results = {}
    for precision in ("fp32", "bf16"):
        for fused in (True, False):
            model.zero_grad()
            lc = LossComputer(model, "mse", fused=fused, precision=precision, micro_batch=2)
            loss = lc.backward(model, x)
            results[precision, fused] = loss, [p.grad.clone() for p in model.parameters()]
    loss32, grads32 = results["fp32", True]
    for key in [("bf16", True), ("bf16", False)]:
        loss, grads = results[key]
        assert loss == pytest.approx(loss32, rel=1e-2)
        for g, g32 in zip(grads, grads32):
            assert torch.nn.functional.cosine_similarity(g.flatten(), g32.flatten(), dim=0) > 0.99
    assert results["bf16", True][0] != loss32                     # bf16 is really used
    with pytest.raises(ValueError, match="precision"):
        LossComputer(model, "mse", precision="fp16")
    with pytest.raises(ValueError, match="target must be one of magnitude, phase-sensitive"):
        LossComputer(model, "mse", target="complex")


def test_bf16_on_a_cpu_without_native_bfloat16_falls_back_to_fp32(monkeypatch):
    """Emulated bfloat16 (an AVX2-only CPU) is about 25x slower than float32: one warning
    line and float32, not a silent crawl."""
    model = ConvSep(preset("convsep-stereo", **SMALL_REAL))
    monkeypatch.setattr(step_module, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16.*fp32"):
        lc = LossComputer(model, "mse", precision="bf16")
    assert not lc.bf16
    monkeypatch.setattr(step_module, "cpu_has_native_bf16", lambda: True)
    assert LossComputer(model, "mse", precision="bf16").bf16


def test_cpu_bf16_detection_reads_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    from convsep.runtime import device

    real_open = builtins.open
    for flags, expected in (("fpu avx2 fma", False), ("fpu avx2 avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda path, *a, _info=info, **k: real_open(_info if path == "/proc/cpuinfo" else path, *a, **k))
        assert device.cpu_has_native_bf16() is expected
        monkeypatch.setattr(builtins, "open", real_open)
