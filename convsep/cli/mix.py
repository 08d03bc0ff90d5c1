"""``convsep mix FOLDER [--gain STEM=GAIN ...] -o OUT``: a karaoke or practice track from the
stems that ``convsep separate`` wrote (the same mixdown as the web app's "Export the mix")."""
from __future__ import annotations

import argparse
from pathlib import Path

from convsep.cli.failures import EXIT_CODES
from convsep.errors import ConvSepError
from convsep.io.audio import is_audio_path
from convsep.io.mixdown import EXPORT_FORMATS, mix_stems, parse_gains


def register(subparsers) -> None:
    p = subparsers.add_parser("mix", help="mix separated stems at chosen gains into one file (karaoke, practice)",
                              description="Sum the stems of a track folder (OUTDIR/<track>/<stem>.<ext>, as "
                                          "`convsep separate` writes it) at chosen gains into one WAV, FLAC or "
                                          "MP3 file, e.g. without the vocals: --gain vocals=0.", epilog=EXIT_CODES)
    p.add_argument("folder", help="a track folder of stems")
    p.add_argument("-o", "--output", required=True, help=f"the mix ({', '.join(EXPORT_FORMATS)}, by its extension)")
    p.add_argument("--gain", action="append", default=None, metavar="STEM=GAIN",
                   help="gain of a stem, 0 to 4 (repeatable; default 1 for every stem)")
    p.add_argument("--bits", choices=["16", "24", "32f"], default="16", help="wav/flac sample format (default: 16)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConvSepError(f"{folder}: not a folder of stems")
    stems = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_audio_path(p)
             and not p.name.startswith(".")}
    if not stems:
        raise ConvSepError(f"{folder}: no stems in it")
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise ConvSepError(f"{output} exists; pass --overwrite to replace it")
    clipped = mix_stems(stems, parse_gains(args.gain), output, bits=args.bits, overwrite=args.overwrite)
    if clipped:
        print(f"convsep mix: warning: {output}: {clipped} samples clipped (lower the gains or use --bits 32f)")
    print(f"{folder}/ ({', '.join(stems)}) -> {output}")
    return 0
