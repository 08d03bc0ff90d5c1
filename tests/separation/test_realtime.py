"""RealtimeSeparator: exact latency, chunking invariance, causality, bounded state."""
import numpy as np
import pytest
import torch

from convsep import RealtimeSeparator
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation.realtime import causal_reference, causal_separate, latency_samples


def _model(name="convsep-stereo", seed=0, **overrides) -> ConvSep:
    torch.manual_seed(seed)
    model = ConvSep(preset(name, **overrides)).eval()
    with torch.no_grad():   # random weights: make the decoders' outputs vary a lot
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _signal(samples, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 44100
    tone = np.sin(2 * np.pi * 330 * t) * (t % 0.25 < 0.1)
    return (0.3 * tone + 0.1 * rng.standard_normal((channels, samples))).astype(np.float32)


def _stream(separator, x, sizes):
    """Processes x in chunks of the given sizes (cycled), then flushes; aligned output."""
    out, pos, k = [], 0, 0
    while pos < x.shape[1]:
        n = sizes[k % len(sizes)]
        out.append(separator.process(x[:, pos:pos + n]))
        pos, k = pos + n, k + 1
    out.append(separator.flush())
    whole = torch.cat(out, -1)
    assert whole.shape[-1] == x.shape[1] + separator.latency_samples
    return whole


def test_latency_is_the_window_plus_lookahead():
    assert latency_samples(1024, 256, 0) == 1022
    assert latency_samples(1024, 256, 1) == 1278
    for lookahead in (0, 1):
        rt = RealtimeSeparator(_model(), lookahead=lookahead)
        assert rt.latency_samples == 1022 + 256 * lookahead
        assert rt.latency_seconds * 1000 <= 30.0


@pytest.mark.parametrize("lookahead", [0, 1, 3])
def test_impulse_comes_out_exactly_latency_samples_later(lookahead):
    rt = RealtimeSeparator(_model(), lookahead=lookahead)
    for position in (0, 1, 700, 3000 + 77):
        rt.reset()
        x = np.zeros((2, 6000), np.float32)
        x[:, position] = 1.0
        out = _stream(rt, x, [6000])
        mix = out.sum(0).numpy()
        expected = np.zeros_like(mix)
        expected[:, position + rt.latency_samples] = 1.0
        np.testing.assert_allclose(mix, expected, atol=2e-6)


@pytest.mark.parametrize("lookahead", [0, 1, 5])
def test_chunking_does_not_change_the_output(lookahead):
    rt = RealtimeSeparator(_model("convsep-plus"), lookahead=lookahead)
    x = _signal(20000)
    whole = _stream(rt, x, [x.shape[1]])
    for sizes in ([1], [64], [4096], [1, 255, 256, 3, 1024, 700, 17]):
        rt.reset()
        torch.testing.assert_close(_stream(rt, x, sizes), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,lookahead", [("convsep-stereo", 0), ("convsep-stereo", 1),
                                            ("convsep-plus", 7), ("deepconvsep", 29)])
def test_matches_the_offline_causal_reference(name, lookahead):
    """Frame by frame equals the model's forward on each frame's block [t+L-29, t+L] at
    position 29-L, masked and inverted offline."""
    model = _model(name)
    rt = RealtimeSeparator(model, lookahead=lookahead)
    x = _signal(15000, channels=model.config.channels)
    out = _stream(rt, x, [512, 333])[..., rt.latency_samples:]
    reference = causal_reference(model, torch.from_numpy(x), lookahead)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
    fast = causal_separate(model, torch.from_numpy(x), lookahead, batch_blocks=7)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)


def test_stems_add_up_and_state_does_not_grow():
    rt = RealtimeSeparator(_model(), lookahead=1)
    x = _signal(44100)
    sizes = {k: getattr(rt, k).shape for k in ("_input", "_features", "_spectra", "_overlap", "_fifo")}
    out = _stream(rt, x, [4096, 1, 64])
    np.testing.assert_allclose(out.sum(0)[:, rt.latency_samples:].numpy(), x, atol=1e-5)
    for _ in range(50):
        rt.process(x[:, :4096])
    assert {k: getattr(rt, k).shape for k in sizes} == sizes
    assert rt._fifo_len <= rt.latency_samples + rt.config.hop


def test_silence_is_silent_and_output_shapes_follow_the_input():
    rt = RealtimeSeparator(_model(), lookahead=1)
    for n in (0, 1, 4096):
        out = rt.process(np.zeros((2, n), np.float32))
        assert out.shape == (4, 2, n) and out.dtype == torch.float32
        assert torch.isfinite(out).all() and out.abs().max() == 0 if n else True


def test_bad_settings_and_input_are_one_line_errors():
    model = _model()
    with pytest.raises(ConvSepError, match="lookahead must be between 0 and 29"):
        RealtimeSeparator(model, lookahead=30)
    rt = RealtimeSeparator(model, lookahead=0)
    with pytest.raises(ConvSepError, match="shape"):
        rt.process(np.zeros((1, 10), np.float32))
    with pytest.raises(ConvSepError, match="NaN"):
        rt.process(np.full((2, 10), np.nan, np.float32))


def test_loads_the_bundled_default_model():
    rt = RealtimeSeparator.load(lookahead=1)
    assert rt.metadata["name"] == "realtime" and rt.metadata["lookahead"] == 1
    assert rt.output_names == ["vocals", "drums", "bass", "other"]
    out = rt.process(_signal(2048))
    assert out.shape == (4, 2, 2048)


def test_process_takes_chunks_as_separator_does():
    """int16 PCM is scaled (not fed as +-32767 floats), int64/bool/complex are refused, and a
    fractional lookahead is not silently truncated."""
    rt = RealtimeSeparator(_model(), lookahead=0)
    x = _signal(4096)
    as_float = rt.process(x)
    rt.reset()
    as_int16 = rt.process(np.round(x * 32768).clip(-32768, 32767).astype(np.int16))
    assert (as_int16 - as_float).abs().max() < 1e-3
    for bad in (x.astype(np.int64), x > 0, x.astype(np.complex64)):
        with pytest.raises(ConvSepError, match="samples"):
            rt.process(bad)
    with pytest.raises(ConvSepError, match="whole number of frames"):
        RealtimeSeparator(_model(), lookahead=1.5)
    with pytest.raises(ConvSepError, match="whole number of frames"):
        RealtimeSeparator.load(lookahead=1.5)
    assert RealtimeSeparator(_model(), lookahead=2.0).lookahead == 2
