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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, timed, version, write_results  # noqa: E402

import torch  # noqa: E402

from convsep.export import load_backend  # noqa: E402
from convsep.modelfile import load_model  # noqa: E402
from convsep.separate import Separator  # noqa: E402

RATE = 44100


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
        base = None
        for name, separator in separators.items():
            with torch.inference_mode():
                whole = timed(lambda: separator.separate_tensor(x), args.repeats)
                segment = timed(lambda: separator._estimate_frames(magnitude), args.repeats)
                stems = separator.separate_tensor(x)
            diff = float((stems - reference).abs().max())
            base = base or whole["median_s"]
            results.append({"backend": name, "seconds": seconds, "separate": whole, "model_segment": segment,
                            "segment_frames": frames, "max_abs_diff_vs_torch": diff})
            rows.append([name, f"{seconds:g} s", f"{whole['median_s']:.3f}", f"{seconds / whole['median_s']:.0f}x",
                         f"{whole['median_s'] / base:.2f}", f"{segment['median_s'] * 1000:.1f}", f"{diff:.1e}"])
    print_table(["backend", "input", "separate s", "real time", "vs torch", "model ms / 5 s segment",
                 "max |diff| vs torch"], rows)
    print("export + load seconds:", load_seconds)
    write_results(args.name or f"backend_speed_{args.threads}thread",
                  {"machine": info, "threads": args.threads, "export_load_seconds": load_seconds,
                   "results": results})


if __name__ == "__main__":
    main()
