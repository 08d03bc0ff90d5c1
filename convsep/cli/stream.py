"""``convsep stream IN -o OUTDIR [--lookahead N] [--model M]``: causal, low-latency separation
of a file, of raw PCM on standard input (IN = ``-``), or of a live sound device."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convsep.constants import SAMPLE_RATE
from convsep.errors import ConvSepError
from convsep.io.audio import BIT_DEPTHS, WRITE_FORMATS, track_name
from convsep.io.filesafety import safe_component


def register(subparsers) -> None:
    from convsep.separation.realtime import DEFAULT_LOOKAHEAD

    p = subparsers.add_parser(
        "stream", help="low-latency causal separation of a file, a pipe or a sound device",
        description="Separate audio causally, one 256-sample hop at a time, with a fixed latency of "
                    "n_fft - 2 + lookahead x hop samples (29.0 ms at --lookahead 1). Stems of a file or "
                    "of standard input are written aligned with the input (the delay removed, same "
                    "length and rate) to OUTDIR/<track>/<stem>.<ext>, or with --stdout as interleaved "
                    "raw PCM (stem 0 channels, stem 1 channels, ...).")
    p.add_argument("input", nargs="?", metavar="IN", help="audio file, or - for raw PCM on standard input")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default: separated)")
    p.add_argument("-m", "--model", default=None,
                   help="model file or bundled model name (default: the bundled low-latency model if any, else the default model)")
    p.add_argument("--lookahead", type=int, default=DEFAULT_LOOKAHEAD,
                   help=f"frames of 256 samples the model may look ahead, 0-29 (default {DEFAULT_LOOKAHEAD})")
    p.add_argument("--format", choices=("f32", "s16"), default="f32", help="raw PCM format for - and --stdout (default f32)")
    p.add_argument("--rate", type=int, default=SAMPLE_RATE, help="sample rate of raw PCM input (default 44100)")
    p.add_argument("--channels", type=int, default=2, help="channels of raw PCM input (default 2)")
    p.add_argument("--stdout", action="store_true", help="write interleaved raw PCM stems to standard output")
    p.add_argument("--name", default=None, help="track folder name for standard input (default: stdin)")
    p.add_argument("--ext", choices=sorted(WRITE_FORMATS), default="wav")
    p.add_argument("--bits", choices=list(BIT_DEPTHS), default="16", help="16, 24 or 32f (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output stems")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--list-devices", action="store_true",
                   help="list the sound devices (marking monitors, the sources of what an output plays) and exit")
    p.add_argument("--input-device", default=None, metavar="DEV",
                   help="live: separate this sound input device: an index, 'default', or part of its name "
                        "(e.g. 'Monitor of' for what the computer is playing)")
    p.add_argument("--output-device", default=None, metavar="DEV",
                   help="live: play the --play stem on this output device (default: the default device)")
    p.add_argument("--play", default="vocals", help="live: the stem to play, or mix (default: vocals)")
    p.add_argument("--blocksize", type=int, default=256, help="live: samples per audio callback (default 256)")
    p.add_argument("--seconds", type=float, default=None, help="live: stop after this long (default: Ctrl-C)")
    p.add_argument("--deadline-blocks", type=int, default=1, metavar="N",
                   help="live: callbacks a block's stems may take before the delayed mixture covers them "
                        "(default 1; each adds --blocksize samples of latency)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import torch

    from convsep.separation import realtime_io
    from convsep.separation.realtime import RealtimeSeparator

    if args.list_devices:
        realtime_io.list_devices()
        return 0
    live = args.input_device is not None or args.output_device is not None
    if not live and args.input is None:
        raise ConvSepError("give an input file, - for standard input, or --input-device for live audio")
    if live and args.input is not None:
        raise ConvSepError("live audio (--input-device/--output-device) takes no IN")
    if args.threads < 1:
        raise ConvSepError("--threads must be at least 1")
    if args.name is not None:
        safe_component(args.name, "--name")
    elif args.input not in (None, "-"):
        safe_component(track_name(Path(args.input)), "track name")
    torch.set_num_threads(args.threads)
    if live:                      # no sound device, no PortAudio: say so before loading a model
        realtime_io.live_devices(args.input_device, args.output_device)
    separator = RealtimeSeparator.load(args.model, lookahead=args.lookahead, device=args.device)
    info = sys.stderr if args.stdout else sys.stdout
    print(f"latency: {separator.latency_seconds * 1000:.1f} ms ({separator.latency_samples} samples at "
          f"{SAMPLE_RATE} Hz, lookahead {separator.lookahead})", file=info, flush=True)
    if live:
        stats = realtime_io.run_live(separator, args.input_device, args.output_device, args.play,
                                     args.blocksize, args.seconds, deadline_blocks=args.deadline_blocks)
        print(f"live: {stats['callbacks']} callbacks, {stats['underruns']} underruns, "
              f"slowest callback {stats['slowest_ms']:.2f} ms")
        print(stats["summary"])
        return 0
    if args.input == "-":
        realtime_io.check_pcm(args.format, args.rate, args.channels)
        chunks, rate, channels, track = (realtime_io.stdin_chunks(args.format, args.rate, args.channels),
                                         args.rate, args.channels, "stdin" if args.name is None else args.name)
    else:
        path = Path(args.input)
        if not path.is_file():
            raise ConvSepError(f"{path}: no such file")
        chunks, rate = realtime_io.file_chunks(path, separator.channels)
        channels, track = separator.channels, track_name(path) if args.name is None else args.name
    if args.stdout:
        result = realtime_io.stream_to_pipe(separator, chunks, rate, channels, sys.stdout.buffer, args.format)
        print(f"streamed {result.samples / rate:.1f} s in {result.elapsed:.1f} s", file=info)
        return 0
    result = realtime_io.stream_to_files(separator, chunks, rate, channels, Path(args.outdir), track,
                                         args.ext, args.bits, args.overwrite)
    for name, count in (result.clipped or {}).items():
        if count:
            print(f"convsep stream: warning: {result.outputs[name]}: {count} samples clipped "
                  "(use --bits 32f to keep them)", file=sys.stderr)
    print(f"{args.input} -> {Path(args.outdir) / track}/ ({result.samples / rate:.1f} s in {result.elapsed:.1f} s)")
    return 0
