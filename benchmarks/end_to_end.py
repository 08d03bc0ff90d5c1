"""File to stems, end to end: ``convsep separate`` on a batch of files, --jobs 1 and --jobs 2.

Writes ``--files`` stereo 16-bit WAV files of ``--seconds`` each (noise at a music-like level)
and a random-weight model file (or takes ``--model``: a bundled name or a file) into a
temporary folder, then runs the CLI in a fresh process for each setting: decode, separate,
write 4 stems per file (process start-up and model loading included, as a user sees it).
Reports wall seconds, seconds of audio per second and the real-time factor.
``--compare-allocator`` adds each setting with ``CONVSEP_KEEP_FREED_MEMORY=0`` (glibc's
allocator as it is), interleaved with the default.

    python benchmarks/end_to_end.py [--files 4] [--seconds 60] [--jobs 1 2] [--repeats 3]
        [--model default] [--compare-allocator]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import ROOT, machine, print_table, write_results  # noqa: E402
from memory import write_noise_wav  # noqa: E402

from convsep.models import ConvSep, preset  # noqa: E402
from convsep.models.modelfile import save_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--model", default=None, help="a bundled model name or model file instead of the random-weight preset")
    parser.add_argument("--compare-allocator", action="store_true",
                        help="also run each setting with CONVSEP_KEEP_FREED_MEMORY=0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="end_to_end", help="results/NAME.json")
    args = parser.parse_args()
    info = machine(args.device)                   # date and load average at the start

    audio_seconds = args.files * args.seconds
    results, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = args.model or save_model(tmp / "model.pt", ConvSep(preset(args.preset)), {"weights": "random"})
        inputs = tmp / "in"
        inputs.mkdir()
        for i in range(args.files):
            write_noise_wav(inputs / f"track{i:02d}.wav", args.seconds / 60, seed=i)
        allocators = ["kept", "default"] if args.compare_allocator else ["kept"]
        settings = [(jobs, allocator) for jobs in args.jobs for allocator in allocators]
        times = {s: [] for s in settings}
        for _ in range(args.repeats):
            for jobs, allocator in settings:
                cmd = [sys.executable, "-m", "convsep", "separate", str(inputs), "-m", str(model),
                       "-o", str(tmp / "out"), "--jobs", str(jobs), "--device", args.device,
                       "--overwrite", "--no-progress"]
                env = dict(os.environ, CONVSEP_KEEP_FREED_MEMORY="1" if allocator == "kept" else "0")
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
                times[jobs, allocator].append(time.perf_counter() - start)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr)
        for (jobs, allocator), runs in times.items():
            median = statistics.median(runs)
            results.append({"jobs": jobs, "allocator": allocator, "median_s": median,
                            "times_s": [round(t, 3) for t in runs],
                            "audio_seconds": audio_seconds, "rtf": median / audio_seconds})
            rows.append([jobs, allocator, f"{median:.2f}", f"{audio_seconds / median:.1f}",
                         f"{median / audio_seconds:.4f}"])
            print(f"--jobs {jobs}, allocator {allocator}: {median:.2f} s for {args.files} x {args.seconds:g} s",
                  flush=True)
    print()
    print_table(["--jobs", "freed blocks", "wall s", "audio s per s", "real-time factor"], rows)
    write_results(args.name, {"machine": info, "preset": args.preset, "model": args.model,
                              "files": args.files, "seconds_per_file": args.seconds,
                              "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
