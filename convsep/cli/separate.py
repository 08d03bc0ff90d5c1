"""``convsep separate IN... [-m MODEL] [-o OUTDIR] ...``"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from convsep.cli.failures import EXIT_CODES, EXIT_ERROR
from convsep.errors import ConvSepError
from convsep.io.audio import BIT_DEPTHS, WRITE_FORMATS, is_audio_path, track_name
from convsep.io.filesafety import describe_os_error
from convsep.runtime.allocator import keep_freed_memory
from convsep.runtime.os_signals import Terminated, stop_on_signals, stop_with_parent


def register(subparsers) -> None:
    p = subparsers.add_parser("separate", help="split audio files into vocals, drums, bass, other",
                              description="Split audio files (or folders of them) into stems: "
                                          "OUTDIR/<track>/<stem>.<ext>.", epilog=EXIT_CODES)
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders (searched recursively)")
    p.add_argument("-m", "--model", default=None, help="model file or bundled model name (default: the bundled default model)")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default: separated)")
    p.add_argument("--stems", default=None, help="comma-separated subset of stems to write, e.g. vocals,drums")
    p.add_argument("--two-stems", default=None, metavar="STEM", help="write STEM and no_STEM (the rest of the mix)")
    p.add_argument("--ext", choices=[*sorted(WRITE_FORMATS), "stem.mp4"], default="wav",
                   help="output format (default: wav); stem.mp4 writes OUTDIR/<track>.stem.mp4, NI Stems for "
                        "DJ software (Traktor, Mixxx): the mixture, drums, bass, other and vocals as AAC")
    p.add_argument("--bits", choices=list(BIT_DEPTHS), default="16", help="16, 24 or 32f (float, never clips); default 16")
    p.add_argument("--keep-rate", action="store_true", help="write stems at the input's sample rate (default: 44100 Hz)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--backend", choices=["torch", "onnx", "torchscript"], default="torch",
                   help="run the model in PyTorch (default), or an exported .onnx/.ts file given with -m "
                        "(onnxruntime / TorchScript; a model file is exported in memory first)")
    p.add_argument("--trust-model-code", action="store_true",
                   help="allow --backend torchscript to run a .ts file: a TorchScript file is a program that "
                        "runs with your rights (it can read and write files); only for files you trust")
    p.add_argument("--wiener", type=int, default=None, metavar="N",
                   help="EM iterations of a multichannel Wiener filter after the masks (norbert), 0 to 10 "
                        "(default: what the model file says, else 0)")
    p.add_argument("--input-level", default=None, metavar="DBFS|off",
                   help="bring each song to this RMS level (dBFS) before the model sees it, the level it was "
                        "trained at; the stems keep the song's level (default: what the model file says, else off)")
    p.add_argument("--speeds", default=None, metavar="LIST",
                   help="separate the song also played at these speeds (pitch and tempo together) and average "
                        "the stems, e.g. 1,1.12,1.19, for about 3x the time: better on real voices, worse on "
                        "synthetic instruments, see docs/results.md (default: what the model file says, else 1)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="files separated in parallel (default: 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per job (default: all cores / jobs); 1 is fastest on a busy machine")
    p.add_argument("--overwrite", action="store_true", help="replace existing output stems")
    p.add_argument("--allow-truncated", action="store_true",
                   help="separate what decodes of a truncated or damaged file, with a warning (default: refuse it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


def collect_inputs(inputs: list[str], missing: list[ConvSepError] | None = None) -> list[tuple[Path, str]]:
    """(file, track name) for every input; folders are searched recursively. A file named
    ``mixture.*`` (MUSDB18-HQ layout) takes its folder's name. With ``missing`` (a list),
    inputs that do not exist or hold no audio are added to it and the others are kept;
    without it the first one is an error."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        problem = None
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p))
            if not found:
                problem = ConvSepError(f"{path}: folder contains no audio files")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problem = ConvSepError(f"{path}: no such file or folder")
        if problem is not None:
            if missing is None:
                raise problem
            missing.append(problem)
    pairs = []
    for path in dict.fromkeys(files):
        name = track_name(path)
        pairs.append((path, path.parent.name if name == "mixture" and path.parent.name else name))
    names = [n for _, n in pairs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConvSepError(f"several inputs would write to the same output folder {clashes[0]!r}; "
                           "separate them in separate runs or rename them")
    return pairs


_worker_separator = None


def _init_worker(options: dict, threads: int) -> None:
    import torch

    from convsep.api import get_separator

    global _worker_separator
    stop_on_signals()
    stop_with_parent()                        # a pool worker: no orphan if the parent is killed
    keep_freed_memory()                       # as in the parent, whatever the start method
    torch.set_num_threads(threads)
    extra = {} if options.get("wiener") is None else {"wiener_iterations": options["wiener"]}
    if options.get("input_level") is not None:
        extra["input_level_db"] = options["input_level"]
    if options.get("speeds") is not None:
        extra["speeds"] = options["speeds"]
    _worker_separator = get_separator(options["model"], options["device"], options["stems"], options["two_stems"],
                                      backend=options.get("backend"),
                                      trust_model_code=options.get("trust_model_code", False), **extra)


def _separate_one(path: Path, track: str, options: dict):
    from convsep.api import separate_file

    try:
        return separate_file(path, options["outdir"], _worker_separator, ext=options["ext"],
                             bits=options["bits"], keep_rate=options["keep_rate"],
                             overwrite=options["overwrite"], progress=options["progress"], track=track,
                             allow_truncated=options["allow_truncated"])
    except ConvSepError as exc:
        return exc
    except OSError as exc:
        return ConvSepError(describe_os_error(exc))
    except (Terminated, KeyboardInterrupt) as exc:
        if multiprocessing.parent_process() is None:
            raise
        # A pool worker: its temporaries are gone; stop here rather than take the next file.
        os._exit(exc.exit_code if isinstance(exc, Terminated) else 130)


def handler(args: argparse.Namespace) -> int:
    from convsep.separation.speed_ensemble import check_speeds

    stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    if stems and args.two_stems:
        raise ConvSepError("use either --stems or --two-stems, not both")
    if args.jobs < 1:
        raise ConvSepError("--jobs must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise ConvSepError("--threads must be at least 1")
    missing: list[ConvSepError] = []
    pairs = collect_inputs(args.inputs, missing)       # the inputs that exist are still done
    if not pairs:
        raise missing[0] if len(missing) == 1 else ConvSepError(
            f"none of the {len(missing)} inputs exists or holds audio ({missing[0]})")
    for problem in missing:
        print(f"convsep separate: error: {problem}", file=sys.stderr)
    outdir_existed = Path(args.outdir).exists()
    options = dict(model=args.model, device=args.device, stems=stems, two_stems=args.two_stems, backend=args.backend,
                   trust_model_code=args.trust_model_code, wiener=args.wiener, input_level=_input_level(args.input_level),
                   speeds=check_speeds(args.speeds),
                   outdir=args.outdir, ext=args.ext, bits=args.bits, keep_rate=args.keep_rate,
                   overwrite=args.overwrite, progress=not args.no_progress and sys.stderr.isatty(),
                   allow_truncated=args.allow_truncated)
    started = time.perf_counter()
    jobs = min(args.jobs, len(pairs))
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        _init_worker(options, threads)
        results = [_separate_one(path, track, options) for path, track in pairs]
    else:
        pool = ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(options, threads))
        try:
            results = list(pool.map(_separate_one, *zip(*pairs), [options] * len(pairs)))
        except BaseException:
            # Stopped (signal, Ctrl-C) or a worker failed: stop the workers, which remove
            # their temporaries on SIGTERM, instead of waiting for them to finish.
            for child in multiprocessing.active_children():
                child.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            if not outdir_existed:          # each worker removed its track folder; OUTDIR too if empty
                try:
                    Path(args.outdir).rmdir()
                except OSError:
                    pass
            raise
        pool.shutdown()
    failed, seconds = 0, 0.0
    for (path, _), result in zip(pairs, results):
        if isinstance(result, ConvSepError):
            failed += 1
            print(f"convsep separate: error: {result}", file=sys.stderr)
            continue
        seconds += result.seconds
        for name, count in result.clipped.items():
            if count:
                print(f"convsep separate: warning: {result.stems[name]}: {count} samples clipped "
                      "(use --bits 32f to keep them)", file=sys.stderr)
        print(f"{path} -> {result.stems[next(iter(result.stems))].parent}/ "
              f"({result.seconds:.1f} s in {result.elapsed:.1f} s)")
    elapsed = time.perf_counter() - started
    failed += len(missing)
    done = len(pairs) + len(missing) - failed
    speed = f", {seconds / elapsed:.1f}x real time" if seconds and elapsed else ""
    print(f"separated {done} of {len(pairs) + len(missing)} file(s): {seconds:.1f} s of audio in {elapsed:.1f} s"
          f"{speed} -> {args.outdir}" + (f"; {failed} failed" if failed else ""))
    return EXIT_ERROR if failed else 0


def _input_level(text: str | None) -> float | bool | None:
    """--input-level: None (the model file's), False ("off") or a level in dBFS."""
    if text is None:
        return None
    if text.strip().lower() == "off":
        return False
    try:
        return float(text)
    except ValueError:
        raise ConvSepError(f"--input-level must be a level in dBFS (e.g. -16) or 'off', got {text!r}") from None
