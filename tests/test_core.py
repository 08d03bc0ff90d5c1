"""Core: STFT, blocks, masks, models, model files, the streaming Separator, learning."""
import math

import numpy as np
import pytest
import torch

from convsep.errors import ConvSepError
from convsep.masks import soft_masks
from convsep.modelfile import load_model, save_model
from convsep.models import PRESETS, ConvSep, ConvSepConfig, preset
from convsep.separate import Separator, plan_outputs
from convsep.spectral import STFT, block_weights, overlap_add, to_blocks
from reference_convsep import reference_forward


@pytest.mark.parametrize("samples", [1, 255, 1024, 44100 + 17, 3 * 44100])
def test_stft_round_trip_is_exact(samples):
    stft = STFT(1024, 256)
    x = torch.randn(2, samples, generator=torch.Generator().manual_seed(samples))
    spec = stft(x)
    assert spec.shape == (2, 513, 1 + samples // 256)
    assert (stft.inverse(spec, samples) - x).abs().max() < 1e-5


def test_stft_matches_torch_centred_stft_with_zero_padding():
    stft = STFT()
    x = torch.randn(2, 10000)
    ours = stft(x)
    ref = torch.stft(x, 1024, 256, window=torch.hann_window(1024), center=True, pad_mode="constant",
                     return_complex=True)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-4


@pytest.mark.parametrize("block_hop", [1, 5, 15, 30])
@pytest.mark.parametrize("crossfade", ["triangular", "equal"])
def test_blocks_then_overlap_add_is_identity(block_hop, crossfade):
    frames = torch.rand(2, 513, 347)
    blocks = to_blocks(frames, 30, block_hop)
    assert blocks.shape[-2:] == (30, 513)
    assert blocks.shape[-3] == 1 + math.ceil((347 - 30) / block_hop)
    back = overlap_add(blocks, 347, block_hop, block_weights(30, crossfade))
    assert (back - frames).abs().max() < 1e-5


def test_triangular_crossfade_weights_fade_between_blocks():
    w = block_weights(30, "triangular")
    assert w[0] == w[-1] == 1 and w.max() == 15 and torch.all(w > 0)


def test_soft_masks_sum_to_one_and_survive_silence():
    y = torch.rand(4, 2, 513, 50)
    y[:, :, :, 10:20] = 0.0  # silence in every source
    for power in (1.0, 2.0):
        m = soft_masks(y, dim=0, power=power)
        assert torch.isfinite(m).all()
        assert (m.sum(0) - 1).abs().max() < 1e-6
        assert torch.allclose(m[:, :, :, 15], torch.full_like(m[:, :, :, 15], 0.25))


def test_preset_parameter_counts_match_the_reference_architectures():
    # DeepConvSep: conv 50x(1,513) 25,700 + conv 50x50x(15,1) 37,550 + dense 800->128 102,528
    # + 4 decoders (dense 128->800) 4 x 103,200 + 4 output biases (transposed convs tied).
    assert sum(p.numel() for p in ConvSep(preset("deepconvsep")).parameters()) == 578_582
    # PytorchConvSep: 51,350 + 22,530 + 61,568 + 4 x (61,920 + 22,550 + 51,302).
    assert sum(p.numel() for p in ConvSep(preset("convsep-stereo")).parameters()) == 678_536


@pytest.mark.parametrize("name", list(PRESETS))
def test_batched_model_equals_per_source_reference_branches(name):
    torch.manual_seed(0)
    model = ConvSep(preset(name))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    c = model.config
    x = torch.rand(3, c.channels, c.context, c.bins)
    out = model(x)
    assert out.shape == (3, 4, c.channels, c.context, c.bins)
    assert (out >= 0).all()
    assert (out - reference_forward(model, x)).abs().max() < 1e-5


def test_config_round_trips_through_json_and_rejects_bad_values():
    cfg = preset("convsep-plus")
    assert ConvSepConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConvSepError, match="unknown fields"):
        ConvSepConfig.from_dict({**cfg.to_dict(), "wings": 2})
    with pytest.raises(ConvSepError, match="time_kernel"):
        preset("convsep-stereo", time_kernel=40)
    with pytest.raises(ConvSepError, match="unknown model preset"):
        preset("nope")


@pytest.fixture(scope="module")
def stereo_separator():
    torch.manual_seed(1)
    return Separator(ConvSep(preset("convsep-stereo")))


def test_stems_sum_to_the_mixture(stereo_separator):
    x = torch.randn(2, 3 * 44100 + 11) * 0.1
    stems = stereo_separator.separate_tensor(x)
    assert stems.shape == (4, 2, x.shape[1])
    assert (stems.sum(0) - x).abs().max() < 1e-4


@pytest.mark.parametrize("segment_seconds", [0.3, 1.0, 2.5])
def test_chunked_output_equals_whole_signal(stereo_separator, segment_seconds):
    model = stereo_separator.model
    x = torch.randn(2, 6 * 44100 + 321) * 0.1
    whole = Separator(model, segment_seconds=1000).separate_tensor(x)
    chunked = Separator(model, segment_seconds=segment_seconds)
    cuts = [0, 1, 1000, 70000, 70001, 150000, x.shape[1]]
    pieces = (x[:, a:b] for a, b in zip(cuts, cuts[1:]))
    streamed = torch.cat(list(chunked.stream(pieces)), -1)
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() < 1e-4
    assert (chunked.separate_tensor(x) - whole).abs().max() < 1e-4


def test_mono_model_and_every_block_hop_keep_the_sum(stereo_separator):
    torch.manual_seed(2)
    mono = Separator(ConvSep(preset("deepconvsep")))
    x = torch.randn(1, 44100) * 0.1
    assert (mono.separate_tensor(x).sum(0) - x).abs().max() < 1e-4
    for hop in (1, 7, 30):
        sep = Separator(stereo_separator.model, block_hop=hop, segment_seconds=0.5)
        y = torch.randn(2, 30000) * 0.1
        assert (sep.separate_tensor(y) - Separator(stereo_separator.model, block_hop=hop,
                                                   segment_seconds=100).separate_tensor(y)).abs().max() < 1e-4


def test_silence_gives_silent_stems_without_nan(stereo_separator):
    out = stereo_separator(np.zeros((2, 44100), np.float32), 44100)
    for stem in out.values():
        assert torch.isfinite(stem).all() and stem.abs().max() == 0


def test_call_resamples_and_adapts_channels(stereo_separator):
    t = np.arange(48000) / 48000  # band-limited, so the 48k -> 44.1k -> 48k round trip is exact
    mono_48k = (0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    out = stereo_separator(mono_48k, 48000)
    assert set(out) == {"vocals", "drums", "bass", "other"}
    for stem in out.values():
        assert stem.shape == (2, 48000)
    total = sum(out.values())
    assert np.abs(total.numpy() - mono_48k[None])[:, 1000:-1000].max() < 2e-3


def test_two_stems_plan_adds_up(stereo_separator):
    sep = Separator(stereo_separator.model, outputs=plan_outputs(stereo_separator.sources, two_stems="vocals"))
    x = torch.randn(2, 20000) * 0.1
    out = sep.separate_tensor(x)
    assert sep.output_names == ["vocals", "no_vocals"]
    assert (out.sum(0) - x).abs().max() < 1e-4
    with pytest.raises(ConvSepError, match="unknown stem"):
        plan_outputs(stereo_separator.sources, stems=["voice"])


def test_model_file_round_trip_and_damage(tmp_path, stereo_separator):
    path = save_model(tmp_path / "m.pt", stereo_separator.model, {"trained_on": "tones", "steps": 3})
    model, meta = load_model(path)
    assert meta == {"trained_on": "tones", "steps": 3}
    for a, b in zip(model.state_dict().values(), stereo_separator.model.state_dict().values()):
        assert torch.equal(a, b)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConvSepError, match="damaged"):
        load_model(damaged)
    text = tmp_path / "text.pt"
    text.write_text("not a model")
    with pytest.raises(ConvSepError, match="damaged|not a convsep"):
        load_model(text)
    with pytest.raises(ConvSepError, match="no such model"):
        load_model(tmp_path / "missing.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["conv1_filters"] = 64
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ConvSepError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")


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


def test_training_a_small_model_raises_sdr():
    from convsep.training.step import LossComputer, excerpt_samples

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
    loss_of = LossComputer(model, "mse")
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
