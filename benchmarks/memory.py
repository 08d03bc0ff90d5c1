"""Peak memory of ``convsep separate`` against the input's length.

Writes 1, 10 and 60-minute stereo 16-bit WAV files (noise at a music-like level) and a
random-weight model file (or takes ``--model``: a bundled name or a file) into a temporary
folder, then separates each file in a fresh process and reads that process's peak resident
set size (``getrusage(RUSAGE_CHILDREN)`` of a wrapper that runs only it) and, with ``--device
cuda``, its peak GPU memory (``torch.cuda.max_memory_allocated``). Streaming decode ->
separate -> write should keep the peak flat (independent of the length) and under 2 GB.

    python benchmarks/memory.py [--minutes 1 10 60] [--preset convsep-stereo | --model default]
        [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from _common import ROOT, machine, print_table, write_results  # noqa: E402

from convsep.models import ConvSep, preset  # noqa: E402
from convsep.models.modelfile import save_model  # noqa: E402

RATE = 44100
LIMIT_BYTES = 2 * 1024 ** 3

# Runs one separation in a child process and prints that child's peak RSS (KiB on Linux).
_WRAPPER = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    start = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": proc.returncode, "maxrss_kib": usage.ru_maxrss,
                      "wall_s": time.perf_counter() - start, "stdout": proc.stdout[-2000:],
                      "stderr": proc.stderr[-2000:]}))
""")

# The separation itself, in the measured process: the CLI, then the GPU peak if any.
_CHILD = textwrap.dedent("""
    import json, sys, torch
    from convsep.cli import main
    rc = main(sys.argv[1:])
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print("GPU_PEAK " + json.dumps(peak))
    sys.exit(rc or 0)
""")


def write_noise_wav(path: Path, minutes: float, seed: int = 0) -> None:
    """A stereo 16-bit WAV of ``minutes`` minutes, written in one-minute pieces."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16") as f:
        for start in range(0, total, 60 * RATE):
            n = min(60 * RATE, total - start)
            f.write((0.1 * rng.standard_normal((n, 2))).astype(np.float32))


def measure(wav: Path, model: Path | str, outdir: Path, device: str) -> dict:
    cmd = [sys.executable, "-c", _CHILD, "separate", str(wav), "-m", str(model), "-o", str(outdir),
           "--device", device, "--no-progress", "--overwrite"]
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"convsep separate failed:\n{result['stderr']}")
    gpu = None
    for line in result["stdout"].splitlines():
        if line.startswith("GPU_PEAK "):
            gpu = json.loads(line.split(" ", 1)[1])
    return {"peak_rss_bytes": result["maxrss_kib"] * 1024, "peak_gpu_bytes": gpu,
            "wall_s": result["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--model", default=None, help="a bundled model name or model file instead of the random-weight preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tmp", default=None, help="folder for the generated files (default: system temp)")
    parser.add_argument("--name", default="memory", help="results/NAME.json")
    args = parser.parse_args()
    info = machine(args.device)                   # date and load average at the start

    rows, results = [], []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = args.model or save_model(tmp / "model.pt", ConvSep(preset(args.preset)), {"weights": "random"})
        for minutes in args.minutes:
            wav = tmp / f"noise_{minutes:g}min.wav"
            started = time.perf_counter()
            write_noise_wav(wav, minutes)
            print(f"wrote {minutes:g} min input in {time.perf_counter() - started:.1f} s", flush=True)
            r = measure(wav, model, tmp / "out", args.device)
            wav.unlink()
            for stem in (tmp / "out").rglob("*.wav"):
                stem.unlink()
            r.update(minutes=minutes, under_2gb=r["peak_rss_bytes"] < LIMIT_BYTES,
                     rtf=r["wall_s"] / (minutes * 60))
            results.append(r)
            gpu = "-" if r["peak_gpu_bytes"] is None else f"{r['peak_gpu_bytes'] / 2**20:.0f}"
            rows.append([f"{minutes:g}", f"{r['peak_rss_bytes'] / 2**20:.0f}", gpu,
                         f"{r['wall_s']:.1f}", f"{r['rtf']:.3f}"])
            print(f"{minutes:g} min: peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, "
                  f"{r['wall_s']:.1f} s", flush=True)
    print()
    print_table(["input min", "peak RSS MiB", "peak GPU MiB", "wall s (process)", "real-time factor"], rows)
    peaks = [r["peak_rss_bytes"] for r in results]
    flat = max(peaks) / min(peaks)
    print(f"\npeak RSS max/min over lengths: {flat:.2f}; all under 2 GB: {all(r['under_2gb'] for r in results)}")
    write_results(args.name, {"machine": info, "preset": args.preset, "model": args.model,
                              "peak_ratio_max_min": flat, "results": results})


if __name__ == "__main__":
    main()
