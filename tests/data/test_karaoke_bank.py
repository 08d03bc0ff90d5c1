"""convsep.data.karaoke_bank: real voices placed over accompaniments, speed, EQ and formants."""
import math

import numpy as np
import pytest
import torch

from convsep.data.karaoke_bank import KaraokeBank, karaoke_sources, place_vocals, random_eq, random_formant_shift


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
