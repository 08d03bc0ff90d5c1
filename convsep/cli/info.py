"""``convsep info MODEL``: a model file's config, size and metadata."""
from __future__ import annotations

import argparse
import json

from convsep.models.modelfile import load_model


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show a model file's config, size and metadata")
    p.add_argument("model", nargs="?", default=None, help="model file or bundled model name (default: the default model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    model, metadata = load_model(args.model)
    parameters = sum(p.numel() for p in model.parameters())
    summary = {"parameters": parameters, "config": model.config.to_dict(), "metadata": metadata}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"model: {args.model or 'default'}  ({parameters:,} parameters)")
    print("config: " + ", ".join(f"{k}={v}" for k, v in summary["config"].items()))
    for key, value in metadata.items():
        text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        print(f"{key}: {text}")
    return 0
