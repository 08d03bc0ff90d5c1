"""``convsep synth OUT ...``: write a synthetic multitrack corpus (see docs/data.md)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic multitrack corpus in MUSDB18 layouts",
        description="Write a synthetic multitrack corpus (vocals, drums, bass, other) in the "
        "MUSDB18-HQ layout (16-bit wav) or as MUSDB18 .stem.mp4 files, with a manifest.",
    )
    p.add_argument("out", help="output folder (must be empty or absent unless --overwrite)")
    p.add_argument("--tracks-train", type=int, default=None, help="train tracks (default 100)")
    p.add_argument("--tracks-test", type=int, default=None, help="test tracks (default 50)")
    p.add_argument("--seconds", type=float, default=None, help="length of each track (default 60)")
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--soundfont", default=None, help="General MIDI SoundFont (.sf2/.sf3) used as the 'fluid' bank")
    p.add_argument("--banks", default="all",
                   help="instrument banks: all (default: every installed GM bank and drum kit), fluid (FluidR3 or "
                        "--soundfont only), or a comma list of fluid, musescore, timgm6mb, csound, avl, hydrogen, "
                        "berklee, sms")
    p.add_argument("--voices", choices=["all", "synthetic", "mir1k"], default="all",
                   help="all (default): real MIR-1K, sms-tools and Berklee voices and the synthetic singer; synthetic: the "
                        "formant singer and GM voices only; mir1k: always a MIR-1K lead")
    p.add_argument("--production", choices=["none", "classic", "light", "full"], default="full",
                   help="effects: full (default), light, classic (the original room reverb only), none; "
                        "--banks fluid --voices synthetic --production classic makes the original corpus")
    p.add_argument("--format", choices=["wav", "stems"], default="wav", dest="fmt",
                   help="wav folders (MUSDB18-HQ) or .stem.mp4 files (MUSDB18)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--preset", choices=["tiny"], default=None,
                   help="tiny: 3 train + 2 test tracks of 4 s (explicit sizes win)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from convsep.synth import PRESETS, make_corpus

    sizes = {"tracks_train": 100, "tracks_test": 50, "seconds": 60.0}
    if args.preset:
        sizes.update(PRESETS[args.preset])
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    manifest = make_corpus(
        args.out, seed=args.seed, soundfont=args.soundfont, fmt=args.fmt,
        jobs=args.jobs, overwrite=args.overwrite, progress=not args.quiet, banks=args.banks, voices=args.voices,
        production=args.production, warn=lambda line: print(f"warning: {line}", file=sys.stderr), **sizes,
    )
    n = len(manifest["tracks"])
    audio = n * sizes["seconds"]
    print(f"wrote {n} tracks ({len(manifest['valid'])} validation) to {args.out} in "
          f"{manifest['generation_seconds']:.1f} s ({audio / manifest['generation_seconds']:.0f}x real time)")
    return 0
