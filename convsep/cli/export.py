"""``convsep export [-m MODEL] -o OUT.onnx|OUT.ts``"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from convsep.errors import ConvSepError


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX or TorchScript",
                              description="Export a model to ONNX (.onnx) or TorchScript (.ts) with "
                                          "dynamic batch and frame count; the STFT stays outside. "
                                          "Run it with `convsep separate --backend onnx -m OUT.onnx`.")
    p.add_argument("-m", "--model", default=None, help="model file or bundled model name (default: the bundled default model)")
    p.add_argument("-o", "--output", default=None,
                   help="output file; .onnx or .ts picks the format (default: MODEL.onnx in the current folder)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default=None,
                   help="format, if the output's suffix does not say it")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing the exported model's masks with PyTorch's on the demo song")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from convsep.models.export import check_parity, export_model

    output = args.output
    if output is None:
        stem = Path(args.model).stem if args.model else "default"
        output = f"{stem}.{'ts' if args.format == 'torchscript' else 'onnx'}"
    if args.format is None and Path(output).suffix.lower() not in (".onnx", ".ts", ".torchscript"):
        raise ConvSepError(f"{output}: name it .onnx or .ts, or pass --format")
    started = time.perf_counter()
    path = export_model(args.model, output, args.format)
    size = path.stat().st_size / 1e6
    print(f"{args.model or 'default'} -> {path} ({size:.1f} MB, {time.perf_counter() - started:.1f} s)")
    if not args.no_check:
        worst = check_parity(args.model, path, args.format, trust_model_code=True)   # written just now
        print(f"max |mask difference| against PyTorch on the demo song: {worst:.2e}")
        if worst > 5e-4:
            raise ConvSepError(f"{path}: the exported masks differ from PyTorch's by {worst:.2e} (> 5e-4)")
    return 0
