"""Real-time separation on one CPU thread: per-hop time, real-time factor, memory over a long
stream, latency, and a clock-paced run that counts buffer underruns.

The input is the bundled demo excerpt (15 s of a test-split song, the sum of its stems),
looped. For each chunk size (64, 256, 1024 samples) the stream is fed through
``RealtimeSeparator.process`` and timed per call and per hop (the time of each frame's
work: STFT, model block, masks, inverse STFT); the deadline of a call is its chunk's
duration. Wall-clock and thread CPU time are both reported: on a machine shared with other
jobs the wall-clock tail is mostly time spent descheduled; the p99 CPU time per hop is
compared with the hop. Then a 10-minute stream in 256-sample chunks reports the resident
memory before it, every 10 s of audio during it and at its end (start, end, max). The paced run delivers 256-sample chunks from a thread that sleeps
until each chunk would have been recorded; a chunk whose stems are not ready one chunk
duration later (when a sound card would play them) is an underrun.

    python benchmarks/realtime.py [--model realtime] [--lookahead 1] [--seconds 60]
        [--stream-minutes 10] [--paced-seconds 60] [--out realtime]

A quick check that it runs (seconds, not a measurement):

    python benchmarks/realtime.py --lookahead 1 --seconds 2 --stream-minutes 0.05 \\
        --paced-seconds 1 --out realtime_check
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from _common import machine, print_table, write_results  # noqa: E402

from convsep.models.registry import PRETRAINED_DIR  # noqa: E402
from convsep.separation.realtime import RealtimeSeparator  # noqa: E402

RATE = 44100


def demo_mixture() -> np.ndarray:
    stems = [sf.read(p, dtype="float32", always_2d=True)[0].T for p in sorted((PRETRAINED_DIR / "demo").glob("*.flac"))]
    return np.ascontiguousarray(sum(stems))


def looped(audio: np.ndarray, samples: int) -> np.ndarray:
    reps = -(-samples // audio.shape[1])
    return np.ascontiguousarray(np.tile(audio, (1, reps))[:, :samples])


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return round(fields.get("VmRSS", 0), 1), round(fields.get("VmHWM", 0), 1)


def stats_ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    return {"median_ms": round(float(np.median(a)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 4), "count": int(a.size)}


def timed_frames(separator: RealtimeSeparator) -> tuple[list[float], list[float]]:
    """Wraps the separator's per-frame work to record its wall-clock and thread CPU time."""
    wall: list[float] = []
    cpu: list[float] = []
    frame = separator._frame

    def timed():
        start, start_cpu = time.perf_counter(), time.thread_time()
        frame()
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)

    separator._frame = timed
    return wall, cpu


def chunk_timing(separator: RealtimeSeparator, audio: np.ndarray, chunk: int) -> dict:
    separator.reset()
    separator.process(audio[:, :RATE])                      # warm-up: 1 s
    separator.reset()
    hop_times, hop_cpu = timed_frames(separator)
    calls, calls_cpu = [], []
    for start in range(0, audio.shape[1] - chunk + 1, chunk):
        piece = audio[:, start:start + chunk]
        t, c = time.perf_counter(), time.thread_time()
        separator.process(piece)
        calls_cpu.append(time.thread_time() - c)
        calls.append(time.perf_counter() - t)
    del separator._frame
    seconds = len(calls) * chunk / RATE
    hop_s = separator.config.hop / RATE
    return {
        "chunk": chunk,
        "deadline_ms": round(1000 * chunk / RATE, 3),
        "per_call": stats_ms(calls),
        "per_hop": stats_ms(hop_times),
        "per_call_cpu": stats_ms(calls_cpu),
        "per_hop_cpu": stats_ms(hop_cpu),
        "hops_over_hop_duration_cpu": int(sum(h > hop_s for h in hop_cpu)),
        "real_time_factor_cpu": round(sum(calls_cpu) / seconds, 4),
        "hop_ms": round(1000 * hop_s, 3),
        "calls_over_deadline": int(sum(c > chunk / RATE for c in calls)),
        "hops_over_hop_duration": int(sum(h > hop_s for h in hop_times)),
        "real_time_factor": round(sum(calls) / seconds, 4),
        "audio_seconds": round(seconds, 1),
    }


def long_stream(separator: RealtimeSeparator, audio: np.ndarray, minutes: float, chunk: int = 256,
                samples_wanted: int = 60) -> dict:
    """Memory over a long stream through ``process``: the resident size before the stream
    (after a warm-up), then about ``samples_wanted`` times during it (every 10 s of audio in a
    10-minute stream) and at its end; start, end and max, and the growth."""
    separator.reset()
    separator.process(audio[:, :RATE])                      # warm-up: 1 s, then a new stream
    separator.reset()
    samples = int(minutes * 60 * RATE)
    every = max(chunk, samples // samples_wanted)
    start_rss = rss_mib()[0]
    sampled, seconds = [], []
    started = time.perf_counter()
    fed, next_mark = 0, every
    while fed < samples:
        offset = fed % (audio.shape[1] - chunk)
        separator.process(audio[:, offset:offset + chunk])
        fed += chunk
        if fed >= next_mark or fed >= samples:
            sampled.append(rss_mib()[0])
            seconds.append(round(fed / RATE, 2))
            next_mark += every
    elapsed = time.perf_counter() - started
    end_rss = sampled[-1] if sampled else start_rss
    return {"minutes": minutes, "chunk": chunk, "rss_mib_start": start_rss, "rss_mib_end": end_rss,
            "rss_mib_max": max([start_rss, *sampled]), "growth_mib": round(end_rss - start_rss, 1),
            "rss_mib_samples": sampled, "sample_seconds": seconds, "peak_rss_mib_process": rss_mib()[1],
            "real_time_factor": round(elapsed / (samples / RATE), 4)}


def paced_run(separator: RealtimeSeparator, audio: np.ndarray, seconds: float, chunk: int = 256) -> dict:
    """A sleeping source thread delivers each chunk when it would have been recorded; the
    stems of chunk k are due one chunk duration after that (the playback buffer)."""
    separator.reset()
    period = chunk / RATE
    count = int(seconds / period)
    inbox: queue.Queue = queue.Queue()
    t0 = time.perf_counter() + 0.05

    def source():
        for k in range(count):
            due = t0 + (k + 1) * period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            start = (k * chunk) % (audio.shape[1] - chunk)
            inbox.put((k, due, time.perf_counter(), audio[:, start:start + chunk]))
        inbox.put(None)

    thread = threading.Thread(target=source, daemon=True)
    thread.start()
    underruns, lateness, source_late = 0, [], []
    while (item := inbox.get()) is not None:
        k, due, arrived, piece = item
        separator.process(piece)
        done = time.perf_counter()
        deadline = due + period
        lateness.append(done - deadline)
        source_late.append(arrived - due)
        underruns += done > deadline
    thread.join()
    slack = -np.asarray(lateness) * 1000
    # with a playback buffer of k periods the stems of chunk k are due (k - 1) periods later
    deeper = {str(k): int((slack + (k - 1) * period * 1000 < 0).sum()) for k in (2, 4)}
    return {"seconds": seconds, "chunk": chunk, "chunks": count, "underruns": int(underruns),
            "underruns_with_buffer_periods": deeper,
            "slack_ms_median": round(float(np.median(slack)), 3), "slack_ms_min": round(float(slack.min()), 3),
            "source_wakeup_late_ms_p99": round(float(np.percentile(source_late, 99)) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model file or bundled name (default: realtime if bundled, else default)")
    parser.add_argument("--lookahead", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per chunk-size measurement")
    parser.add_argument("--stream-minutes", type=float, default=10.0)
    parser.add_argument("--paced-seconds", type=float, default=60.0)
    parser.add_argument("--out", default="realtime")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = args.model or ("realtime" if (PRETRAINED_DIR / "realtime.pt").exists() else "default")
    audio = demo_mixture()
    data = {"machine": machine("cpu"), "model": model, "input": "bundled demo excerpt (mixture), looped",
            "torch_threads": torch.get_num_threads(), "lookaheads": {}}
    rows = []
    for lookahead in args.lookahead:
        separator = RealtimeSeparator.load(model, lookahead=lookahead)
        entry = {"latency_samples": separator.latency_samples,
                 "latency_ms": round(separator.latency_seconds * 1000, 2), "chunks": []}
        for chunk in (64, 256, 1024):
            result = chunk_timing(separator, looped(audio, int(args.seconds * RATE)), chunk)
            entry["chunks"].append(result)
            rows.append([lookahead, entry["latency_ms"], chunk, result["deadline_ms"],
                         f"{result['per_call']['median_ms']:.3f} / {result['per_call']['p99_ms']:.3f} / {result['per_call']['max_ms']:.2f}",
                         f"{result['per_hop']['median_ms']:.3f} / {result['per_hop']['p99_ms']:.3f} / {result['per_hop']['max_ms']:.2f}",
                         result["hops_over_hop_duration"], result["real_time_factor"],
                         f"{result['per_hop_cpu']['median_ms']:.3f} / {result['per_hop_cpu']['p99_ms']:.3f} / {result['per_hop_cpu']['max_ms']:.2f}",
                         result["real_time_factor_cpu"]])
        data["lookaheads"][str(lookahead)] = entry
    print_table(["lookahead", "latency ms", "chunk", "deadline ms", "per call median / p99 / max ms",
                 "per hop median / p99 / max ms", "hops > 5.8 ms", "RTF",
                 "per hop CPU time median / p99 / max ms", "RTF (CPU time)"], rows)
    for lookahead, entry in data["lookaheads"].items():
        worst = max(entry["chunks"], key=lambda r: r["per_hop_cpu"]["p99_ms"])
        print(f"lookahead {lookahead}: p99 CPU time per hop on one thread {worst['per_hop_cpu']['p99_ms']:.3f} ms "
              f"(worst chunk size {worst['chunk']}) of the {worst['hop_ms']} ms hop: "
              f"{'below' if worst['per_hop_cpu']['p99_ms'] < worst['hop_ms'] else 'NOT below'}")
    separator = RealtimeSeparator.load(model, lookahead=args.lookahead[-1])
    data["long_stream"] = stream = long_stream(separator, audio, args.stream_minutes)
    print(f"\n{args.stream_minutes:g}-minute stream through process: RSS start {stream['rss_mib_start']} MiB, "
          f"end {stream['rss_mib_end']} MiB, max {stream['rss_mib_max']} MiB over {len(stream['rss_mib_samples'])} "
          f"samples (growth {stream['growth_mib']} MiB), RTF {stream['real_time_factor']}")
    data["paced"] = paced_run(separator, audio, args.paced_seconds)
    print(f"paced run: {data['paced']['chunks']} chunks of 256 in {args.paced_seconds:g} s, "
          f"{data['paced']['underruns']} underruns (with 2 / 4 buffered periods: "
          f"{data['paced']['underruns_with_buffer_periods']['2']} / {data['paced']['underruns_with_buffer_periods']['4']}), slack median {data['paced']['slack_ms_median']} ms, "
          f"min {data['paced']['slack_ms_min']} ms")
    write_results(args.out, data)


if __name__ == "__main__":
    main()
