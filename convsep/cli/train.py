"""``convsep train ROOT -o OUTDIR ...`` (multi-process: ``torchrun --nproc-per-node N -m convsep train ...``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from convsep.data.augment import AugmentConfig
from convsep.errors import ConvSepError
from convsep.models import PRESETS, preset
from convsep.runtime.device import resolve_device
from convsep.training.config import OPTIMISERS, SCHEDULES, TrainConfig
from convsep.training.losses import LOSSES
from convsep.training.step import PRECISIONS, TARGETS

AUGMENTATIONS = ("cross_song", "gain", "channel_swap", "channel_mute", "source_dropout", "silence_rejection", "speed")


def register(subparsers) -> None:
    d = TrainConfig()
    a = AugmentConfig()
    p = subparsers.add_parser("train", help="train a ConvSep model on MUSDB18, MUSDB18-HQ or a folder of stems",
                              description="Train a model. ROOT is a dataset (MUSDB18 .stem.mp4, MUSDB18-HQ with "
                                          "--is-wav, the synthetic corpus, a folder of stems) or a prepared cache.")
    p.add_argument("root", nargs="+", help="dataset root or prepared cache (convsep prepare); several are "
                                           "trained on together (their validation splits too)")
    p.add_argument("-o", "--outdir", default=d.outdir, help=f"run folder: best.pt, last.ckpt, history.json, tb/ (default {d.outdir})")
    p.add_argument("--cache", default=None, help="where to prepare the decoded cache (default OUTDIR/cache)")
    p.add_argument("--is-wav", action="store_true", help="MUSDB18-HQ (wav) instead of .stem.mp4")
    p.add_argument("--layout", choices=("auto", "musdb", "folder", "real"), default="auto",
                   help="real: ROOT/{musdb7train,eif_cc0}/<song>/<stem>.opus, split by the fixed validation list")
    p.add_argument("--model", choices=sorted(PRESETS), default=d.model, help=f"model preset (default {d.model})")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help='overrides of the preset, e.g. \'{"conv1_filters": 64}\' or a JSON file')
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--frequency-weighting", action="store_true", help="weight errors 1.0 -> 0.5 over frequency")
    p.add_argument("--target", choices=TARGETS, default=d.target,
                   help="what the masked mixture is trained towards: each source's magnitude, or its projection "
                        "on the mixture's phase limited to [0, |mixture|] (phase-sensitive: the error of the "
                        "complex STFT, as the waveform's SDR sees it, with the mse loss)")
    p.add_argument("--level-balance", action="store_true",
                   help="divide each excerpt's and source's error by that source's energy (plus a floor of 1%% of "
                        "the mixture's): every source of every excerpt weighs alike whatever its level, as in SDR "
                        "(mse or l1 loss)")
    p.add_argument("--optimiser", "--optimizer", choices=OPTIMISERS, default=d.optimiser)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3; adadelta 1.0)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm; 0 disables")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="excerpts per step and process")
    p.add_argument("--blocks-per-excerpt", type=int, default=d.blocks_per_excerpt)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping; 0 disables")
    p.add_argument("--valid-seconds", type=float, default=d.valid_seconds)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="extra checkpoints every N steps")
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop after the epoch that passes this many minutes")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model file's weights (or a bundled model's name), e.g. to fine-tune")
    p.add_argument("--lookahead", type=int, default=None, metavar="N",
                   help="train for causal inference with N frames of look-ahead (score block position context-1-N)")
    p.add_argument("--micro-batch", type=int, default=d.micro_batch,
                   help=f"excerpts per micro-batch; gradients accumulate to the same step (default {d.micro_batch}; 0: whole batch)")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="bf16: matrix products with bfloat16 operands, float32 elsewhere (faster on CPUs with "
                        "AMX and on GPUs; see docs/benchmarks.md)")
    p.add_argument("--mir1k", default=None, metavar="ROOT",
                   help="MIR-1K folder (vocals/, accompaniment/): real singing of its training singers mixed into "
                        "the batches, its held-out singers scored after each epoch (e.g. ../shared/data/real/mir1k)")
    p.add_argument("--karaoke-cache", default=None, help="where the decoded MIR-1K clips are kept (default OUTDIR)")
    p.add_argument("--real-vocals-p", type=float, default=d.real_vocals_p,
                   help=f"share of excerpts whose vocals become MIR-1K singing (default {d.real_vocals_p})")
    p.add_argument("--real-speed", type=float, default=d.real_speed,
                   help="play MIR-1K excerpts at speeds drawn in [1/X, X], pitch and tempo together, "
                        f"as new singers (default {d.real_speed}: as recorded)")
    p.add_argument("--real-eq", type=float, default=d.real_eq_db, metavar="DB",
                   help="MIR-1K voices through random smooth equalisers of up to +-DB dB (a tilt and "
                        f"three bells), new timbres at the same pitch (default {d.real_eq_db}: off)")
    p.add_argument("--real-formant", type=float, default=d.real_formant, metavar="X",
                   help="move each MIR-1K voice's formants by a factor drawn in [1/X, X] at the same pitch, "
                        f"another vocal tract singing the same notes (default {d.real_formant}: off)")
    p.add_argument("--karaoke-share", type=float, default=d.karaoke_share,
                   help=f"MIR-1K karaoke excerpts per step, as a share of the batch (default {d.karaoke_share})")
    p.add_argument("--real-valid-clips", type=int, default=d.real_valid_clips,
                   help=f"held-out MIR-1K clips scored after each epoch (default {d.real_valid_clips})")
    p.add_argument("--select-on", choices=("auto", "synthetic", "real"), default=d.select_on,
                   help="what picks the best model (auto: real when --mir1k is given)")
    p.add_argument("--device", default=d.device, help="cpu or cuda (with torchrun: one GPU per process)")
    p.add_argument("--augment", default=",".join(AUGMENTATIONS), metavar="LIST",
                   help=f"augmentations to use, comma-separated from {', '.join(AUGMENTATIONS)}, or 'none' (default: all)")
    p.add_argument("--cross-song-p", type=float, default=a.cross_song_p)
    p.add_argument("--gain-range", type=float, nargs=2, default=(a.gain_min, a.gain_max), metavar=("MIN", "MAX"))
    p.add_argument("--channel-swap-p", type=float, default=a.channel_swap_p)
    p.add_argument("--channel-mute-p", type=float, default=a.channel_mute_p)
    p.add_argument("--source-dropout-p", type=float, default=a.source_dropout_p)
    p.add_argument("--speed-max", type=float, default=a.speed_max, metavar="X",
                   help="play sources at speeds drawn in [1/X, X], pitch and tempo together (default 1: off)")
    p.add_argument("--speed-p", type=float, default=a.speed_p, help="share of excerpts whose speed changes")
    p.add_argument("--grouped-share", type=float, default=d.grouped_share,
                   help="excerpts of songs whose bass is inside 'other' per step, as a share of the batch; "
                        f"scored with bass + other as one group (default {d.grouped_share})")
    p.add_argument("--ema", type=float, default=d.ema, metavar="DECAY",
                   help="validate and save a moving average of the weights, moved by 1 - DECAY after each step "
                        "(e.g. 0.998: about the last 500 steps; default 0: the weights themselves)")
    p.add_argument("--track-cap", type=float, default=d.track_cap_seconds, metavar="SECONDS",
                   help="when excerpts are drawn, a song weighs at most this many seconds of start positions, "
                        "so a few long songs do not outweigh many short ones (default 0: every excerpt equally likely)")
    p.add_argument("--silence-db", type=float, default=a.silence_threshold_db, help="reject excerpts quieter than this")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue the run in OUTDIR exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="start over in an OUTDIR that holds a run")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=handler)


def _overrides(text: str | None) -> dict:
    if not text:
        return {}
    try:
        source = Path(text).read_text() if Path(text).is_file() else text
        value = json.loads(source)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConvSepError(f"--model-config: not JSON nor a JSON file ({exc})") from None
    if not isinstance(value, dict):
        raise ConvSepError("--model-config must be a JSON object")
    return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    chosen = {s.strip() for s in args.augment.split(",") if s.strip()} - {"none"}
    unknown = chosen - set(AUGMENTATIONS)
    if unknown:
        raise ConvSepError(f"--augment: unknown {', '.join(sorted(unknown))}; choose from {', '.join(AUGMENTATIONS)}")
    augment = AugmentConfig(
        cross_song_p=args.cross_song_p, gain_min=args.gain_range[0], gain_max=args.gain_range[1],
        channel_swap_p=args.channel_swap_p, channel_mute_p=args.channel_mute_p,
        source_dropout_p=args.source_dropout_p, silence_threshold_db=args.silence_db,
        speed_max=args.speed_max, speed_p=args.speed_p,
        **{name: name in chosen for name in AUGMENTATIONS})
    lr = args.lr if args.lr is not None else (1.0 if args.optimiser == "adadelta" else 1e-3)
    overrides = _overrides(args.model_config)
    try:
        preset(args.model, **overrides)            # unknown keys, wrong types, absurd sizes
    except ConvSepError as exc:
        raise ConvSepError(f"--model-config: {exc}") from None
    resolve_device(args.device)
    return TrainConfig(
        root=args.root[0], extra_roots=list(args.root[1:]), outdir=args.outdir, cache=args.cache, is_wav=args.is_wav, layout=args.layout,
        model=args.model, model_overrides=overrides, loss=args.loss,
        frequency_weighting=args.frequency_weighting, target=args.target, level_balance=args.level_balance, optimiser=args.optimiser, lr=lr,
        weight_decay=args.weight_decay, schedule=args.schedule, grad_clip=args.grad_clip,
        batch_size=args.batch_size, blocks_per_excerpt=args.blocks_per_excerpt,
        steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, patience=args.patience,
        valid_seconds=args.valid_seconds, checkpoint_every=args.checkpoint_every, seed=args.seed,
        max_minutes=args.max_minutes, init=args.init, lookahead=args.lookahead, micro_batch=args.micro_batch, precision=args.precision,
        mir1k=args.mir1k, karaoke_cache=args.karaoke_cache, real_vocals_p=args.real_vocals_p, real_speed=args.real_speed,
        real_eq_db=args.real_eq, real_formant=args.real_formant, karaoke_share=args.karaoke_share, grouped_share=args.grouped_share, track_cap_seconds=args.track_cap, ema=args.ema, real_valid_clips=args.real_valid_clips, select_on=args.select_on,
        device=args.device, augment=augment.to_dict(), tensorboard=not args.no_tensorboard,
    ).validate()


def handler(args: argparse.Namespace) -> int:
    from convsep.training.trainer import train

    result = train(config_from_args(args), resume=args.resume, overwrite=args.overwrite,
                   progress=not args.no_progress)
    best = result["best"]
    if not result["ranks_agree"]:
        raise ConvSepError("the training processes ended with different weights; this is a bug, please report it")
    if not result["is_main"]:
        return 0
    if result["history"]:
        score = f"best validation SDR {best['sdr']:.2f} dB at epoch {best['epoch'] + 1}" if best.get("sdr") is not None else "no validation"
        print(f"trained {result['step']} steps: {score}; model: {Path(args.outdir) / 'best.pt'}")
    if result.get("processes", 1) > 1:
        print(f"all {result['processes']} processes ended with identical weights")
    return 0
