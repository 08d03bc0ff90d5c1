"""Speed of the torch BSSEval v4 against museval, 4 stereo sources at 44.1 kHz.

Both compute the SiSEC 2018 setting (1 s windows, 1 s hop, 512-tap filters, images variant).
For each track length the script times museval.evaluate and convsep's bss_eval_v4 on the same
random signals (the cost does not depend on the content), checks that their per-window
numbers agree, and reports wall-clock and process CPU time. On a CUDA machine it also times
the torch version on the GPU.

    python benchmarks/bsseval_speed.py [--seconds 30 240] [--threads 1] [--skip-museval-long]

With --skip-museval-long museval is only run on tracks of at most 30 s; its time on longer
tracks is then extrapolated from a fit ``a + b * seconds`` on two short tracks and marked
``"museval_extrapolated": true``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from convsep.evaluate import bss_eval_v4

RATE = 44100
SOURCES, CHANNELS = 4, 2


def _signals(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (SOURCES, int(seconds * RATE), CHANNELS)
    refs = rng.standard_normal(shape).astype(np.float32)
    ests = (0.8 * refs + 0.2 * np.roll(refs, 1, axis=0) + 0.5 * rng.standard_normal(shape))
    return refs, ests.astype(np.float32)


def _timed(fn, sync=lambda: None):
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    sync()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _museval(refs: np.ndarray, ests: np.ndarray):
    import museval

    return _timed(lambda: museval.evaluate(refs, ests))


def _fast(refs, ests, device: str):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    r, e = torch.from_numpy(refs).to(device), torch.from_numpy(ests).to(device)
    bss_eval_v4(r[:, : 2 * RATE], e[:, : 2 * RATE])  # warm-up
    out, wall, cpu = _timed(lambda: bss_eval_v4(r, e), sync)
    return [out[k].cpu().numpy() for k in ("SDR", "ISR", "SIR", "SAR")], wall, cpu


def _max_diff(a, b) -> float:
    return float(max(np.nanmax(np.abs(x - y)) for x, y in zip(a, b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 240.0])
    parser.add_argument("--skip-museval-long", action="store_true",
                        help="run museval only on tracks of at most 30 s; extrapolate longer ones")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the fast version (default: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bsseval_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    museval_fit = None
    if args.skip_museval_long and any(s > 30 for s in args.seconds):
        # museval's time is a fixed part (the filter solves) plus a part per window
        (_, t10, _), (_, t30, _) = _museval(*_signals(10)), _museval(*_signals(30))
        slope = (t30 - t10) / 20
        museval_fit = (t10 - 10 * slope, slope)

    rows = []
    for seconds in args.seconds:
        refs, ests = _signals(seconds)
        row = {"seconds": seconds, "sources": SOURCES, "channels": CHANNELS}
        fast, row["fast_cpu_wall_s"], row["fast_cpu_process_s"] = _fast(refs, ests, "cpu")
        if museval_fit is not None and seconds > 30:
            row["museval_wall_s"] = museval_fit[0] + museval_fit[1] * seconds
            row["museval_extrapolated"] = True
        else:
            ref_out, row["museval_wall_s"], row["museval_process_s"] = _museval(refs, ests)
            row["museval_extrapolated"] = False
            row["max_abs_diff_db"] = _max_diff(fast, ref_out)
        row["speedup_cpu_wall"] = row["museval_wall_s"] / row["fast_cpu_wall_s"]
        if torch.cuda.is_available():
            _, row["fast_cuda_wall_s"], _ = _fast(refs, ests, "cuda")
            row["speedup_cuda_wall"] = row["museval_wall_s"] / row["fast_cuda_wall_s"]
        rows.append(row)

    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "museval": importlib.metadata.version("museval"),
        },
        "setting": "museval.evaluate(win=44100, hop=44100, mode='v4') vs convsep bss_eval_v4",
        "rows": rows,
    }

    print(f"{'track':>8} {'museval s':>12} {'fast CPU s':>11} {'speed-up':>9} {'max |dB diff|':>14}"
          + (f" {'fast CUDA s':>12}" if torch.cuda.is_available() else ""))
    for r in rows:
        mus = f"{r['museval_wall_s']:.1f}" + ("*" if r["museval_extrapolated"] else "")
        diff = f"{r['max_abs_diff_db']:.1e}" if "max_abs_diff_db" in r else "-"
        line = (f"{r['seconds']:>7.0f}s {mus:>12} {r['fast_cpu_wall_s']:>11.2f} "
                f"{r['speedup_cpu_wall']:>8.1f}x {diff:>14}")
        if "fast_cuda_wall_s" in r:
            line += f" {r['fast_cuda_wall_s']:>12.3f}"
        print(line)
    if any(r["museval_extrapolated"] for r in rows):
        print("* extrapolated from museval on 10 s and 30 s tracks")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
