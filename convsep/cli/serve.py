"""``convsep serve [--port P] [--host H] ...``: the local web app."""
from __future__ import annotations

import argparse
import os

from convsep.errors import ConvSepError
from convsep.models.modelfile import load_model


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="a local web app: drop songs in, play and download the stems",
                              description="Start the web app on http://127.0.0.1:PORT (localhost only "
                                          "unless --host). Songs are separated in the background; "
                                          "files live in a temporary folder removed on exit.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("-m", "--model", action="append", default=None, metavar="MODEL",
                   help="model file or bundled model name the page may choose (repeatable; the first "
                        "is the default; default: the bundled models that separate files offline, "
                        "the default model first)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default: 200 MB)")
    p.add_argument("--queue", type=int, default=16, help="jobs waiting at most (default: 16)")
    p.add_argument("--workers", type=int, default=1, help="songs separated at once (default: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores / workers)")
    p.add_argument("--keep-minutes", type=float, default=60.0,
                   help="finished jobs and their files are deleted after this long (default: 60)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        from convsep.serve.app import ServeOptions, run_server
    except ImportError as exc:
        raise ConvSepError(f"convsep serve needs the web extra ({exc.name} is missing): "
                           "pip install 'convsep[serve]'") from None
    if args.queue < 1 or args.workers < 1 or args.max_upload_mb <= 0 or args.keep_minutes <= 0:
        raise ConvSepError("--queue, --workers, --max-upload-mb and --keep-minutes must be positive")
    if not 0 <= args.port <= 65535:
        raise ConvSepError(f"--port {args.port}: not a port number")
    if args.threads is not None and args.threads < 1:
        raise ConvSepError("--threads must be at least 1")
    models = args.model or None    # None: the bundled models that separate files offline
    for model in models or []:           # a bad model is an error now, not on the first upload
        load_model(model)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    options = ServeOptions(models=models, max_upload_bytes=int(args.max_upload_mb * 1e6),
                           queue_size=args.queue, workers=args.workers, threads=threads,
                           keep_seconds=args.keep_minutes * 60)
    return run_server(options, host=args.host, port=args.port, open_browser=args.open)
