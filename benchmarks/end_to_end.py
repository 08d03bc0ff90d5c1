"""File to stems, end to end: ``convsep separate`` on a batch of files, --jobs 1 and --jobs 2.

Writes ``--files`` stereo 16-bit WAV files of ``--seconds`` each (noise at a music-like level)
and a random-weight model file into a temporary folder, then runs the CLI in a fresh process
for each setting: decode, separate, write 4 stems per file (process start-up and model
loading included, as a user sees it). Reports wall seconds, seconds of audio per second and
the real-time factor.

    python benchmarks/end_to_end.py [--files 4] [--seconds 60] [--jobs 1 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, print_table, write_results  # noqa: E402

import torch  # noqa: E402

from convsep.modelfile import save_model  # noqa: E402
from convsep.models import ConvSep, preset  # noqa: E402
from memory import write_noise_wav  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="end_to_end", help="results/NAME.json")
    args = parser.parse_args()
    info = machine(args.device)                   # date and load average at the start

    audio_seconds = args.files * args.seconds
    results, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = save_model(tmp / "model.pt", ConvSep(preset(args.preset)), {"weights": "random"})
        inputs = tmp / "in"
        inputs.mkdir()
        for i in range(args.files):
            write_noise_wav(inputs / f"track{i:02d}.wav", args.seconds / 60, seed=i)
        for jobs in args.jobs:
            times = []
            for _ in range(args.repeats):
                cmd = [sys.executable, "-m", "convsep", "separate", str(inputs), "-m", str(model),
                       "-o", str(tmp / "out"), "--jobs", str(jobs), "--device", args.device,
                       "--overwrite", "--no-progress"]
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                times.append(time.perf_counter() - start)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr)
            median = statistics.median(times)
            results.append({"jobs": jobs, "median_s": median, "times_s": [round(t, 3) for t in times],
                            "audio_seconds": audio_seconds, "rtf": median / audio_seconds})
            rows.append([jobs, f"{median:.2f}", f"{audio_seconds / median:.1f}", f"{median / audio_seconds:.4f}"])
            print(f"--jobs {jobs}: {median:.2f} s for {args.files} x {args.seconds:g} s", flush=True)
    print()
    print_table(["--jobs", "wall s", "audio s per s", "real-time factor"], rows)
    write_results(args.name, {"machine": info, "preset": args.preset,
                              "files": args.files, "seconds_per_file": args.seconds,
                              "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
