"""Live separation: late blocks are covered by the delayed mixture and counted, on-time blocks
are the normal stream's; sound devices matched by name; all without sound hardware."""
import threading
import time
import types

import numpy as np
import pytest
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models import ConvSep, preset
from convsep.separation import realtime_io
from convsep.separation.live import LiveSeparation
from convsep.separation.realtime import RealtimeSeparator

B = 256


def _model() -> ConvSep:
    torch.manual_seed(0)
    model = ConvSep(preset("convsep-stereo")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _signal(blocks, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(blocks * B) / 44100
    tone = np.sin(2 * np.pi * 330 * t) * (t % 0.25 < 0.1)
    return (0.3 * tone + 0.1 * rng.standard_normal((2, blocks * B))).astype(np.float32)


class Stalling(RealtimeSeparator):
    """Every ``every``-th hop's frame computation stops until the test releases it (a hop
    that misses its deadline, deterministically), or sleeps ``sleep`` seconds."""

    def __init__(self, *args, every=0, sleep=0.0, **kwargs):
        self.every, self.sleep = every, sleep
        self.stalled, self.release = threading.Event(), threading.Event()
        self.stalls = 0
        super().__init__(*args, **kwargs)

    def _frame(self):
        if self.every and self._frames % self.every == self.every - 1:
            self.stalls += 1
            if self.sleep:
                time.sleep(self.sleep)
            else:
                self.stalled.set()
                assert self.release.wait(30)
                self.release.clear()
        super()._frame()


def _reference(model, x, deadline_blocks):
    """The normal stream's stems (process on the whole input), as played: delayed by the
    deadline's blocks."""
    stems = RealtimeSeparator(model).process(x).numpy()
    return np.concatenate([np.zeros((*stems.shape[:2], deadline_blocks * B), np.float32), stems], -1)[..., :x.shape[1]]


def _delayed_mixture(x, delay):
    return np.concatenate([np.zeros((x.shape[0], delay), np.float32), x], -1)[:, :x.shape[1]]


def _check_fallback(block, mixture):
    """A late block: the stems add up to the delayed mixture, each a share of it."""
    np.testing.assert_allclose(block.sum(0), mixture, atol=1e-5)
    if not mixture.any():             # before the input reaches the output: silence
        assert not block.any()
        return
    for stem in block:
        gain = float(np.vdot(stem, mixture) / np.vdot(mixture, mixture))
        assert -1e-6 <= gain <= 1 + 1e-6
        np.testing.assert_allclose(stem, gain * mixture, atol=1e-6)


@pytest.mark.parametrize("deadline,hold", [(1, 0), (2, 2)])
def test_late_blocks_are_covered_and_counted_exactly(deadline, hold):
    """A hop stalls past its deadline every 12 hops; the test releases it ``hold`` callbacks
    after its block was due, so hold + 1 blocks are late each time, and no others."""
    model = _model()
    blocks = 80
    x = _signal(blocks)
    separator = Stalling(model, every=12)
    live = LiveSeparation(separator, B, deadline)
    live.start()
    out, late, stalls = [], [], []
    try:
        for n in range(blocks):
            before = live.late
            out.append(live.block(x[:, n * B:(n + 1) * B]).copy())
            if live.late > before:
                late.append(n - deadline)
            while True:              # let the worker finish, unless it is stalled
                if separator.stalled.is_set():
                    if not stalls or stalls[-1] != live.working:
                        stalls.append(live.working)
                    if n >= stalls[-1] + deadline + hold:
                        separator.stalled.clear()
                        separator.release.set()
                        continue
                    break
                if live.finished == n + 1:
                    break
                time.sleep(0.0002)
    finally:
        separator.release.set()
        live.stop()
    played = np.concatenate(out, -1)
    assert played.shape == (4, 2, x.shape[1])                         # no gaps
    assert separator.stalls == 6
    # every stall makes exactly hold + 1 blocks late, those after it are on time again
    expected = sorted({k for k in range(blocks - deadline) for s in stalls if s <= k <= s + hold})
    assert late == expected and live.late == len(expected) == 6 * (hold + 1)
    assert live.blocks == blocks
    reference = _reference(model, x, deadline)
    mixture = _delayed_mixture(x, live.latency_samples)
    for n in range(blocks):
        m = n - deadline
        span = slice(n * B, (n + 1) * B)
        if m in late:
            _check_fallback(played[..., span], mixture[:, span])
            assert np.abs(played[..., span]).sum(-1).min() > 0          # no zero-filled dropout
        else:
            np.testing.assert_array_equal(played[..., span], reference[..., span])


def test_a_worker_that_falls_behind_restarts_at_the_newest_block():
    """Without the worker running, blocks queue up; once it runs it drops the backlog,
    restarts the separator and covers the blocks until its latency has passed."""
    model = _model()
    x = _signal(60, seed=2)
    live = LiveSeparation(RealtimeSeparator(model), B, 1, resync_blocks=4)
    out = [live.block(x[:, n * B:(n + 1) * B]).copy() for n in range(20)]
    assert live.late == 19
    live.step(*live._inbox.get())                     # behind by 19: drops 0..18, runs 19
    assert live.resyncs == 1 and live._inbox.empty() and live.finished == 20
    for n in range(20, 60):
        out.append(live.block(x[:, n * B:(n + 1) * B]).copy())
        live.step(*live._inbox.get())
    warmup = -(-live.separator.latency_samples // B)
    assert live.late == 19 + warmup
    # after the warm-up the stems are those of a stream that started at block 19
    fresh = RealtimeSeparator(model).process(x[:, 19 * B:]).numpy()
    played = np.concatenate(out, -1)
    start = 20 + warmup
    np.testing.assert_array_equal(played[..., start * B:], fresh[..., (start - 20) * B:(60 - 20) * B])
    mixture = _delayed_mixture(x, live.latency_samples)
    for n in range(1, start):
        span = slice(n * B, (n + 1) * B)
        _check_fallback(played[..., span], mixture[:, span])
    assert "restarted 1 times" in live.summary()


# -- a fake sounddevice ---------------------------------------------------------------------
class FakeSoundDevice(types.SimpleNamespace):
    """query_devices, query_hostapis, default.device and a duplex Stream whose callbacks come
    from a thread in real time (one block per block duration), recording what is played."""

    class PortAudioError(Exception):
        pass

    class CallbackAbort(Exception):
        pass

    def __init__(self, devices, audio=None):
        super().__init__(default=types.SimpleNamespace(device=(0, 1)))
        self.devices, self.audio, self.played, self.opened = devices, audio, [], None
        fake = self

        class Stream:
            latency = (0.01, 0.01)

            def __init__(self, device, samplerate, blocksize, channels, dtype, latency, callback):
                fake.opened = dict(device=device, blocksize=blocksize, channels=channels)
                self.blocksize, self.callback, self.active = blocksize, callback, True

            def _run(self):
                status = types.SimpleNamespace(input_underflow=False, output_underflow=False,
                                               input_overflow=False)
                period = self.blocksize / 44100
                for start in range(0, fake.audio.shape[1], self.blocksize):
                    outdata = np.zeros((self.blocksize, fake.audio.shape[0]), np.float32)
                    self.callback(fake.audio[:, start:start + self.blocksize].T, outdata, self.blocksize,
                                  None, status)
                    fake.played.append(outdata.T.copy())
                    time.sleep(period)
                self.active = False

            def __enter__(self):
                self.thread = threading.Thread(target=self._run)
                self.thread.start()
                return self

            def __exit__(self, *exc):
                self.thread.join()

        self.Stream = Stream

    def query_devices(self):
        return self.devices

    def query_hostapis(self):
        return [{"name": "ALSA"}, {"name": "PulseAudio"}]


DEVICES = [
    {"name": "HDA Intel PCH: ALC257 Analog (hw:0,0)", "max_input_channels": 2, "max_output_channels": 2, "hostapi": 0},
    {"name": "Headphones", "max_input_channels": 0, "max_output_channels": 2, "hostapi": 1},
    {"name": "Monitor of Built-in Audio Analog Stereo", "max_input_channels": 2, "max_output_channels": 0, "hostapi": 1},
    {"name": "Monitor of Headphones", "max_input_channels": 2, "max_output_channels": 0, "hostapi": 1},
    {"name": "pulse", "max_input_channels": 32, "max_output_channels": 32, "hostapi": 0},
]


class RecordingLive(LiveSeparation):
    """Records which blocks were covered (for the test only)."""

    covered: list = []

    def block(self, indata):
        before = self.late
        out = super().block(indata)
        if self.late > before:
            RecordingLive.covered.append(self.blocks - 1 - self.deadline_blocks)
        return out


def test_live_stream_with_slow_hops_has_no_gaps_and_reports_the_late_blocks(monkeypatch):
    """Through run_live with a fake duplex stream in real time: every 25th hop sleeps four
    block durations. Whatever the machine's load adds, the played vocals have the input's
    length, the blocks reported late are the delayed mixture's share and every other block
    is the normal stream's."""
    model = _model()
    blocks = 120
    x = _signal(blocks, seed=1)
    fake = FakeSoundDevice(DEVICES, x)
    monkeypatch.setattr(realtime_io, "_sounddevice", lambda: fake)
    monkeypatch.setattr(realtime_io, "LiveSeparation", RecordingLive)
    monkeypatch.setattr(RecordingLive, "covered", [])
    separator = Stalling(model, every=25, sleep=4 * B / 44100)
    lines = []
    stats = realtime_io.run_live(separator, "monitor of built-in", "headph", "vocals", B, seconds=30,
                                 report=lines.append)
    assert fake.opened == dict(device=(2, 1), blocksize=B, channels=2)
    played = np.concatenate(fake.played, -1)
    assert played.shape == x.shape and stats["callbacks"] == blocks            # no gaps
    covered = RecordingLive.covered
    assert stats["late"] == len(covered) >= separator.stalls >= 4
    reference = _reference(model, x, 1)[0]
    mixture = _delayed_mixture(x, separator.latency_samples + B)
    for n in range(blocks):
        span = slice(n * B, (n + 1) * B)
        if n - 1 in covered:
            energy = np.vdot(mixture[:, span], mixture[:, span])
            gain = float(np.vdot(played[:, span], mixture[:, span]) / energy) if energy else 0.0
            assert 0 <= gain <= 1 + 1e-6
            np.testing.assert_allclose(played[:, span], gain * mixture[:, span], atol=1e-6)
        else:
            np.testing.assert_array_equal(played[:, span], reference[:, span])
    assert stats["summary"] == f"live: {len(covered)} late blocks of {blocks} (256 samples each), " \
                               "covered by the delayed mixture"
    assert lines[0].startswith("live: stems 34.8 ms after their input (model 29.0 ms + compute deadline 5.8 ms)")


def test_devices_match_by_index_exact_name_or_one_substring():
    match = realtime_io.match_device
    assert match(DEVICES, None, "input") is None and match(DEVICES, "default", "output") is None
    assert match(DEVICES, "2", "input") == 2
    assert match(DEVICES, "monitor of BUILT-IN", "input") == 2
    assert match(DEVICES, "headphones", "output") == 1              # outputs only: one match
    assert match(DEVICES, "Monitor of Headphones", "input") == 3
    for spec, kind, message in [("Monitor", "input", "matches 2 input devices (2: Monitor of Built-in Audio "
                                 "Analog Stereo; 3: Monitor of Headphones); give more of the name or the index"),
                                ("speakers", "output", "--output-device 'speakers': no output device's name contains it"),
                                ("1", "input", "--input-device 1: no input device has that index")]:
        with pytest.raises(ConvSepError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
            match(DEVICES, spec, kind)
        assert "\n" not in str(err.value)
    with pytest.raises(ConvSepError, match="no sound input device exists"):
        match([DEVICES[1]], "default", "input")


def test_list_devices_marks_monitors_and_defaults(monkeypatch, capsys):
    monkeypatch.setattr(realtime_io, "_sounddevice", lambda: FakeSoundDevice(DEVICES))
    assert main(["stream", "--list-devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["index", "in", "out", "host", "API", "name"] and len(lines) == 6
    assert lines[1].endswith("(hw:0,0)  [default input]") and lines[2].endswith("Headphones  [default output]")
    assert "PulseAudio" in lines[3] and lines[3].endswith("Monitor of Built-in Audio Analog Stereo  [monitor: what an output plays]")
    assert lines[5].endswith("pulse")


def test_missing_sounddevice_or_device_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "sounddevice", None)        # not installed
    for argv in (["--list-devices"], ["--input-device", "default"]):
        assert main(["stream", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("convsep stream: error: live audio needs the sounddevice package")
    monkeypatch.setattr(realtime_io, "_sounddevice", lambda: FakeSoundDevice(DEVICES))
    assert main(["stream", "--input-device", "Monitor of Speakers", "--output-device", "Headphones"]) == 2
    err = capsys.readouterr().err
    assert err == "convsep stream: error: --input-device 'Monitor of Speakers': no input device's name " \
                  "contains it (see convsep stream --list-devices)\n"
