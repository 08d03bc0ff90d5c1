"""``convsep prepare ROOT CACHE``: decode a dataset once into a training cache."""
from __future__ import annotations

import argparse

from convsep.errors import ConvSepError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="decode a dataset once into a fast training cache",
        description=(
            "Decode every track of a dataset (MUSDB18 STEMS, MUSDB18-HQ with --is-wav, a folder "
            "of ROOT/<track>/<source>.wav stems, or the real four-stem songs ROOT/{musdb7train,eif_cc0}) once into CACHE: int16 arrays at 44.1 kHz stereo "
            "that training samples from. Re-running on a complete cache does nothing."
        ),
    )
    p.add_argument("root", metavar="ROOT", help="dataset folder")
    p.add_argument("cache", metavar="CACHE", help="cache folder to create")
    p.add_argument("--is-wav", action="store_true", help="MUSDB18-HQ: ROOT/<subset>/<track>/<source>.wav")
    p.add_argument("--layout", choices=("auto", "musdb", "folder", "real"), default="auto",
                   help="dataset layout (default: auto; real: both splits of the real four-stem songs, the "
                        "validation songs marked)")
    p.add_argument("--subsets", default="train", help="comma-separated subsets to include (default: train)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="tracks decoded in parallel (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from convsep.data.cache import prepare_cache

    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()]
    bad = [s for s in subsets if s not in ("train", "test")]
    if not subsets or bad:
        raise ConvSepError(f"--subsets takes train and/or test, got '{args.subsets}'")
    cache = prepare_cache(
        args.root, args.cache, subsets=subsets, is_wav=args.is_wav, layout=args.layout,
        jobs=args.jobs, overwrite=args.overwrite, progress=not args.quiet,
    )
    seconds = sum(t.num_samples for t in cache.tracks) / cache.rate
    splits = {}
    for t in cache.tracks:
        splits[t.split] = splits.get(t.split, 0) + 1
    detail = ", ".join(f"{n} {s}" for s, n in sorted(splits.items()))
    print(f"cache {cache.root}: {len(cache)} tracks ({detail}), {seconds / 60:.1f} min at {cache.rate} Hz")
    return 0
