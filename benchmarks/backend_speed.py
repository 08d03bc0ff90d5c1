"""CPU speed of the Separator's backends on the same input: PyTorch, ONNX (onnxruntime) and
TorchScript, all running the bundled default model inside the same streaming Separator.

For each track length the script times ``Separator.separate_tensor`` (STFT, the model on
blocks, overlap-add, masks, ISTFT, in 5 s segments) and the model alone on one segment's
frames (``Separator._estimate_frames``: the part the backend replaces), and reports the
largest difference of each backend's stems from PyTorch's.

    python benchmarks/backend_speed.py [--seconds 30 240] [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import machine, print_table, version, write_results  # noqa: E402

from convsep.models.export import load_backend  # noqa: E402
from convsep.models.modelfile import load_model  # noqa: E402
from convsep.separation.separator import Separator  # noqa: E402

RATE = 44100


def seconds_of(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 240.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default=None, help="results file name (default: backend_speed_<threads>thread)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    info.update(onnxruntime=version("onnxruntime"), onnx=version("onnx"))

    model, metadata = load_model(None)
    separators = {"torch": Separator(model, metadata=metadata)}
    load_seconds = {}
    for backend in ("onnx", "torchscript"):
        started = time.perf_counter()
        exported = load_backend(backend, None, threads=args.threads)
        load_seconds[backend] = round(time.perf_counter() - started, 2)
        separators[backend] = Separator(None, metadata=exported.metadata, backend=exported)

    g = torch.Generator().manual_seed(0)
    rows, results = [], []
    for seconds in args.seconds:
        x = 0.1 * torch.randn(2, int(seconds * RATE), generator=g)
        reference = separators["torch"].separate_tensor(x)
        sep = separators["torch"]
        frames = sep.core_frames + 2 * sep.margin
        magnitude = sep.stft(x[:, :(frames - 1) * sep.config.hop]).abs().transpose(-1, -2).contiguous()
        # The backends take turns in every repeat, so that a change of load on a shared
        # machine hits them alike; min and median are both reported.
        whole = {name: [] for name in separators}
        segment = {name: [] for name in separators}
        stems = {}
        with torch.inference_mode():
            for name, separator in separators.items():               # warm-up
                stems[name] = separator.separate_tensor(x)
                separator._estimate_frames(magnitude)
            for _ in range(args.repeats):
                for name, separator in separators.items():
                    whole[name].append(seconds_of(lambda: separator.separate_tensor(x)))
                    segment[name].append(min(seconds_of(lambda: separator._estimate_frames(magnitude))
                                             for _ in range(3)))
        base = statistics.median(whole["torch"])
        for name in separators:
            diff = float((stems[name] - reference).abs().max())
            med, best = statistics.median(whole[name]), min(whole[name])
            seg_med, seg_best = statistics.median(segment[name]), min(segment[name])
            results.append({"backend": name, "seconds": seconds, "separate_s": whole[name],
                            "model_segment_s": segment[name], "segment_frames": frames,
                            "max_abs_diff_vs_torch": diff})
            rows.append([name, f"{seconds:g} s", f"{med:.3f} ({best:.3f})", f"{seconds / med:.0f}x",
                         f"{med / base:.2f}", f"{seg_med * 1000:.1f} ({seg_best * 1000:.1f})", f"{diff:.1e}"])
    print_table(["backend", "input", "separate s median (min)", "real time", "vs torch",
                 "model ms / 5 s segment median (min)",
                 "max |diff| vs torch"], rows)
    print("export + load seconds:", load_seconds)
    write_results(args.name or f"backend_speed_{args.threads}thread",
                  {"machine": info, "threads": args.threads, "export_load_seconds": load_seconds,
                   "results": results})


if __name__ == "__main__":
    main()
