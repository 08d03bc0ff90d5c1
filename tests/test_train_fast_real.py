"""The fused training step (same loss and gradients as plain autograd), micro-batches,
look-ahead, band-limited and grouped losses, and real (MIR-1K-like) voices in training."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from convsep.data import mir1k
from convsep.data.karaoke import KaraokeBank, karaoke_sources, place_vocals, random_eq, random_formant_shift
from convsep.models import ConvSep, preset
from convsep.training.config import TrainConfig
from convsep.training.step import LossComputer, excerpt_samples
from convsep.training.trainer import train

SMALL = {"conv1_filters": 12, "conv2_filters": 6, "bottleneck": 16}


def _grads(model, loss_of, x, **kw):
    model.zero_grad()
    loss = loss_of(model, x, **kw)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["convsep-stereo", "deepconvsep", "convsep-plus"])
@pytest.mark.parametrize("setting", ["plain", "band", "groups", "lookahead"])
def test_fused_loss_and_gradients_equal_autograd(name, setting):
    torch.manual_seed(0)
    model = ConvSep(preset(name, **SMALL)).double()
    x = torch.randn(3, 4, model.config.channels, excerpt_samples(model.config, 2), dtype=torch.float64) * 0.1
    x[0, 1] = 0                                                           # a silent source
    kw = {"band": {"bandwidth_bins": torch.tensor([100, 513, 186])},
          "groups": {"groups": ((0,), (1, 2, 3))}}.get(setting, {})
    lookahead = 1 if setting == "lookahead" else None
    weighted = name == "convsep-plus"
    ref = LossComputer(model, "mse", weighted=weighted, fused=False, lookahead=lookahead)
    fused = LossComputer(model, "mse", weighted=weighted, fused=True, lookahead=lookahead)
    assert fused.fused and not ref.fused
    for lc in (ref, fused):
        if lc.weights is not None:
            lc.weights = lc.weights.double()
    loss_ref, grads_ref = _grads(model, ref, x, **kw)
    loss_fused, grads_fused = _grads(model, fused, x, **kw)
    assert loss_fused == pytest.approx(loss_ref, rel=1e-10)
    for a, b in zip(grads_ref, grads_fused):
        assert (a - b).abs().max() <= 1e-8 * a.abs().max()


def test_micro_batches_give_the_whole_batch_gradient():
    torch.manual_seed(1)
    model = ConvSep(preset("convsep-stereo", **SMALL)).double()
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
    model = ConvSep(preset("convsep-stereo", **SMALL))
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
    model = ConvSep(preset("convsep-stereo", **SMALL))
    x = torch.randn(2, 4, 2, excerpt_samples(model.config, 1)) * 0.1
    lc = LossComputer(model, "mse", lookahead=3)
    assert lc._position() == slice(26, 27)
    with pytest.raises(ValueError):
        LossComputer(model, "mse", lookahead=30)
    assert torch.isfinite(lc(model, x))


def test_place_vocals_and_karaoke_sources_set_levels():
    g = torch.Generator().manual_seed(0)
    batch = torch.zeros(3, 4, 2, 1000)
    batch[:, 1:] = 0.1 * torch.randn(3, 3, 2, 1000, generator=g)
    vocals = torch.randn(2, 1000, generator=g)
    clip_rms = vocals.pow(2).mean(1).sqrt()
    place_vocals(batch, vocals, clip_rms, torch.tensor([0, 2]), torch.tensor([0.0, -6.0]))
    accomp_rms = batch[:, 1:].sum(1).pow(2).mean((1, 2)).sqrt()
    voc_rms = batch[:, 0].pow(2).mean((1, 2)).sqrt()
    assert voc_rms[1] == 0
    assert 20 * torch.log10(voc_rms[0] / accomp_rms[0]) == pytest.approx(0.0, abs=1e-4)
    assert 20 * torch.log10(voc_rms[2] / accomp_rms[2]) == pytest.approx(-6.0, abs=1e-4)
    rms = torch.tensor([[0.1, 0.2], [0.1, 0.2]])
    out = karaoke_sources(torch.ones(2, 10) * 0.1, torch.ones(2, 10) * 0.2, rms,
                          torch.tensor([-5.0, 0.0]), torch.tensor([0.0, -6.0]))
    assert out.shape == (2, 4, 2, 10) and out[:, 2:].abs().max() == 0
    ratio = 20 * torch.log10(out[:, 0].abs().mean((1, 2)) / out[:, 1].abs().mean((1, 2)))
    assert torch.allclose(ratio, torch.tensor([-5.0, 0.0]), atol=1e-4)


@pytest.fixture(scope="module")
def fake_mir1k(tmp_path_factory):
    """MIR-1K's layout: 16 kHz mono vocals and accompaniment of 5 singers (2 held out)."""
    root = tmp_path_factory.mktemp("mir1k")
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    for folder in ("vocals", "accompaniment"):
        (root / folder).mkdir()
    for singer in ("abjones", "annar", "leon", "amy", "yifen"):
        for clip in ("1_01", "1_02"):
            f0 = rng.uniform(150, 400)
            voice = 0.3 * np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
            accomp = 0.1 * rng.standard_normal(t.size)
            sf.write(root / "vocals" / f"{singer}_{clip}.wav", voice, 16000)
            sf.write(root / "accompaniment" / f"{singer}_{clip}.wav", accomp, 16000)
    return root


def test_mir1k_split_by_singer_and_bank(fake_mir1k, tmp_path):
    train_clips = mir1k.list_clips(fake_mir1k, "train")
    valid_clips = mir1k.list_clips(fake_mir1k, "valid")
    assert {c.singer for c in valid_clips} == {"abjones", "annar"}
    assert not {c.singer for c in train_clips} & set(mir1k.VALID_SINGERS)
    bank = KaraokeBank.load(fake_mir1k, tmp_path / "k", "train")
    assert len(bank.names) == 6 and bank.audio.shape[1] == 6 * 3 * 44100
    assert bank.bandwidth_hz == 8000
    vocals, accomp, rms, speed = bank.sample(4, 4096, torch.Generator().manual_seed(0))
    assert vocals.shape == accomp.shape == (4, 4096) and rms.shape == (4, 2) and torch.equal(speed, torch.ones(4))
    g = torch.Generator().manual_seed(0)                  # the same draws, gathered sample by sample
    usable = bank.lengths - 4096 + 1
    clip = torch.multinomial(usable.double() / usable.sum(), 4, replacement=True, generator=g)
    start = (torch.rand(4, generator=g, dtype=torch.float64) * usable[clip]).long().minimum(usable[clip] - 1)
    index = (bank.offsets[clip] + start)[:, None] + torch.arange(4096)
    assert torch.equal(vocals, bank.audio[0, index].float() / 32767)
    assert torch.equal(accomp, bank.audio[1, index].float() / 32767)
    again = KaraokeBank.load(fake_mir1k, tmp_path / "k", "train")        # from the cache
    assert torch.equal(again.audio, bank.audio)


def _tone_bank(rate: int = 44100, seconds: float = 2.0) -> KaraokeBank:
    """Two clips: vocals a 440 Hz tone, accompaniment a 1000 Hz tone (int16)."""
    t = np.arange(int(rate * seconds)) / rate
    pair = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)])
    audio = torch.from_numpy(np.round(np.concatenate([pair, pair], 1) * 32767).astype(np.int16))
    lengths = torch.tensor([len(t), len(t)])
    return KaraokeBank(audio, torch.tensor([0, len(t)]), lengths, torch.tensor([[0.35, 0.18]] * 2),
                       ["a", "b"], rate, 8000.0)


def _peak_hz(x: torch.Tensor, rate: int) -> torch.Tensor:
    """Strongest frequency of each row (n, L), to 1 Hz (zero-padded FFT)."""
    spectrum = torch.fft.rfft(x.double() * torch.hann_window(x.shape[-1], dtype=torch.float64), n=rate)
    return spectrum.abs().argmax(-1).double()


def test_karaoke_speed_moves_pitch_of_both_stems_together():
    bank = _tone_bank()
    vocals, accomp, _, speed = bank.sample(64, 22050, torch.Generator().manual_seed(1), max_speed=1.25)
    assert speed.min() >= 0.8 - 1e-6 and speed.max() <= 1.25 + 1e-6 and speed.std() > 0.1
    assert (speed.log().abs() > 0.1).any() and (speed < 1).any() and (speed > 1).any()
    assert torch.allclose(_peak_hz(vocals, 44100), 440 * speed.double(), atol=1.5)
    assert torch.allclose(_peak_hz(accomp, 44100), 1000 * speed.double(), atol=1.5)
    assert torch.allclose(vocals.abs().amax(-1), torch.full((64,), 0.5), atol=0.01)   # level kept
    same = bank.sample(64, 22050, torch.Generator().manual_seed(1), max_speed=1.25)
    assert all(torch.equal(a, b) for a, b in zip((vocals, accomp, speed), (same[0], same[1], same[3])))
    with pytest.raises(ValueError, match="max_speed"):
        bank.sample(2, 100, torch.Generator(), max_speed=0.5)


def _band_gain_db(x: torch.Tensor, y: torch.Tensor, rate: int, lo: float, hi: float) -> torch.Tensor:
    """Power gain (dB) from rows of x to rows of y (n, L) in the band [lo, hi) Hz."""
    f = torch.fft.rfftfreq(x.shape[-1], 1 / rate)
    band = (f >= lo) & (f < hi)
    power = lambda z: torch.fft.rfft(z.double()).abs().pow(2)[:, band].mean(1)  # noqa: E731
    return 10 * torch.log10(power(y) / power(x))


def test_random_eq_changes_timbre_within_its_range_and_keeps_level():
    x = torch.randn(32, 44100, generator=torch.Generator().manual_seed(0))
    y = random_eq(x, torch.Generator().manual_seed(1), 6.0, 44100)
    assert torch.allclose(y.pow(2).mean(1), x.pow(2).mean(1), rtol=1e-4)               # level kept
    bands = [(150, 300), (600, 1200), (2000, 4000), (4000, 8000)]
    gains = torch.stack([_band_gain_db(x, y, 44100, lo, hi) for lo, hi in bands], 1)  # (32, bands)
    shape = gains - gains.mean(1, keepdim=True)                                        # level-free
    assert shape.abs().max() < 12.5                                                    # +-6 dB curve
    assert shape.std() > 1.0 and (shape.max(1).values - shape.min(1).values > 3).float().mean() > 0.5
    assert not torch.allclose(gains[0], gains[1], atol=0.5)                            # each row its own
    again = random_eq(x, torch.Generator().manual_seed(1), 6.0, 44100)
    assert torch.equal(y, again)
    flat = random_eq(x, torch.Generator().manual_seed(1), 0.0, 44100)
    assert torch.allclose(flat, x, atol=1e-5)
    bank = _tone_bank()                                              # in the bank: vocals only
    plain = bank.sample(8, 22050, torch.Generator().manual_seed(2), max_speed=1.2)
    eq = bank.sample(8, 22050, torch.Generator().manual_seed(2), max_speed=1.2, max_eq_db=6.0)
    assert torch.equal(eq[1], plain[1]) and torch.equal(eq[3], plain[3]) and not torch.allclose(eq[0], plain[0])
    with pytest.raises(ValueError, match="max_eq_db"):
        bank.sample(2, 100, torch.Generator(), max_eq_db=-1.0)


def _vowel(f0: float, formants: tuple, rate: int = 44100, seconds: float = 1.0) -> torch.Tensor:
    """A steady sung vowel: harmonics of ``f0`` shaped by Gaussian formant peaks (Hz)."""
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    out = torch.zeros_like(t)
    for h in range(1, int(8000 / f0)):
        amplitude = 0.01 + sum(torch.exp(torch.tensor(-((h * f0 - f) / 150.0) ** 2)) for f in formants)
        out += amplitude * torch.sin(2 * torch.pi * h * f0 * t)
    return out.float()


def _harmonics(x: torch.Tensor, f0: float, rate: int = 44100) -> torch.Tensor:
    """Amplitudes (rows, harmonics below 8 kHz) of one-second rows at whole multiples of ``f0``."""
    spectrum = torch.fft.rfft(x.double()).abs()                    # 1 Hz bins
    return spectrum[:, [int(h * f0 * x.shape[1] / rate) for h in range(1, int(8000 / f0))]]


def test_random_formant_shift_moves_the_envelope_not_the_pitch():
    f0, formants = 200.0, (700.0, 1200.0, 2600.0)
    x = _vowel(f0, formants)[None].repeat(6, 1)
    y = random_formant_shift(x, torch.Generator().manual_seed(3), 1.2, 44100)
    ratio = torch.exp((2 * torch.rand(6, generator=torch.Generator().manual_seed(3)) - 1) * math.log(1.2))
    assert torch.allclose(y.pow(2).mean(1), x.pow(2).mean(1), rtol=1e-4)               # level kept
    spectrum = torch.fft.rfft(y.double()).abs()
    harmonic_energy = _harmonics(y, f0).pow(2).sum(1) / spectrum.pow(2).sum(1)
    assert (harmonic_energy > 0.95).all()                          # the pitch stays: energy on its harmonics
    frequencies = torch.arange(1, int(8000 / f0), dtype=torch.float64) * f0
    centroid = lambda a: (a.pow(2) * frequencies).sum(1) / a.pow(2).sum(1)             # noqa: E731
    moved = centroid(_harmonics(y, f0)) / centroid(_harmonics(x, f0))
    assert torch.corrcoef(torch.stack([moved, ratio.double()]))[0, 1] > 0.9            # with each row's factor
    assert (moved[ratio > 1.05] > 1.03).all() and (moved[ratio < 0.95] < 0.97).all()
    assert torch.equal(y, random_formant_shift(x, torch.Generator().manual_seed(3), 1.2, 44100))
    assert torch.allclose(random_formant_shift(x, torch.Generator(), 1.0, 44100), x, atol=1e-4)
    bank = _tone_bank()                                            # in the bank: vocals only
    plain = bank.sample(4, 22050, torch.Generator().manual_seed(2), max_speed=1.2)
    shifted = bank.sample(4, 22050, torch.Generator().manual_seed(2), max_speed=1.2, max_formant=1.2)
    assert torch.equal(shifted[1], plain[1]) and torch.equal(shifted[3], plain[3])
    assert not torch.allclose(shifted[0], plain[0])
    with pytest.raises(ValueError, match="max_formant"):
        bank.sample(2, 100, torch.Generator(), max_formant=0.9)


def test_training_with_real_voices_selects_on_held_out_singers(fake_mir1k, tmp_path, make_hq_dataset):
    root = tmp_path / "corpus"
    make_hq_dataset(root, {("train", f"Song {i}"): 2.0 for i in range(3)})
    manifest = [{"track": f"Song {i}", "subset": "train", "split": "valid" if i == 2 else "train",
                 "vocals_bandwidth_hz": 8000 if i == 0 else 22050} for i in range(3)]
    (root / "manifest.json").write_text(json.dumps({"tracks": manifest}))
    cfg = TrainConfig(root=str(root), outdir=str(tmp_path / "run"), cache=str(tmp_path / "cache"),
                      model_overrides=SMALL, batch_size=4, blocks_per_excerpt=1, steps_per_epoch=3, epochs=2,
                      valid_seconds=2.0, tensorboard=False, seed=0, mir1k=str(fake_mir1k), real_valid_clips=2,
                      real_speed=1.2, real_eq_db=6.0, real_formant=1.1)
    result = train(cfg, progress=False)
    last = result["history"][-1]
    assert {"real_vocals", "real_accompaniment", "vocals"} <= set(last["valid_sdr"])
    assert last["valid_sdr_mean"] == pytest.approx(
        (last["valid_sdr"]["real_vocals"] + last["valid_sdr"]["real_accompaniment"]) / 2)
    assert (Path(cfg.outdir) / "best.pt").exists()
    from convsep.data.cache import open_cache
    bands = [t.vocals_bandwidth_hz for t in open_cache(tmp_path / "cache").tracks]
    assert bands.count(8000.0) == 1 and bands.count(None) == 2


def test_evaluate_two_stems_mode(fake_mir1k, tmp_path, capsys):
    """`convsep evaluate --two-stems vocals` on MIR-1K's layout: held-out singers, two levels."""
    from convsep.cli import main

    code = main(["evaluate", "--root", str(fake_mir1k), "--two-stems", "vocals", "--split", "valid",
                 "--levels", "0,-5", "-o", str(tmp_path / "ev"), "--no-progress"])
    assert code == 0
    summary = json.loads((tmp_path / "ev" / "two_stems.json").read_text())
    row = summary["median"]["default"]
    assert row["mixtures"] == 8                      # 2 held-out singers x 2 clips x 2 levels
    for key in ("vocals_global_sdr", "accompaniment_global_sdr", "vocals_sdr", "accompaniment_sdr"):
        assert np.isfinite(row[key])
    lines = (tmp_path / "ev" / "two_stems.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 and "-5.0" in lines[-1]
    assert "vocals_global_sdr" in capsys.readouterr().out
    assert main(["evaluate", "--root", str(tmp_path), "--two-stems", "vocals", "-o", str(tmp_path / "x")]) != 0


def test_bf16_products_keep_the_loss_and_gradients_of_fp32():
    """precision="bf16" (bfloat16 operands in the matrix products) against float32: the loss
    within 1% and every parameter's gradient pointing the same way (cosine > 0.99)."""
    torch.manual_seed(0)
    model = ConvSep(preset("convsep-stereo", **SMALL))
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
