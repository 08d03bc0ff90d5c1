"""Everything a training run needs, as one JSON-able record."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

from convsep.data.augment import AugmentConfig
from convsep.errors import ConvSepError
from convsep.training.losses import LOSSES
from convsep.training.step import LEVEL_BALANCE_LOSSES, PRECISIONS, TARGETS

OPTIMISERS = ("adam", "adamw", "adadelta")
SCHEDULES = ("none", "cosine", "plateau")


@dataclass
class TrainConfig:
    root: str = ""                      # dataset root, or a prepared cache folder
    extra_roots: list = field(default_factory=list)   # more datasets or caches, trained on with root
    outdir: str = "runs/convsep"
    cache: str | None = None            # where to prepare the cache (default OUTDIR/cache)
    is_wav: bool = False
    layout: str = "auto"
    model: str = "convsep-stereo"       # preset name
    model_overrides: dict = field(default_factory=dict)
    loss: str = "mse"
    frequency_weighting: bool = False
    target: str = "magnitude"           # what the masked mixture learns: magnitude or phase-sensitive
    level_balance: bool = False         # each excerpt's sources weigh alike whatever their level (as in SDR)
    optimiser: str = "adam"
    lr: float = 1e-3                    # Adadelta: 1.0, as the reference
    weight_decay: float = 0.0
    schedule: str = "plateau"
    grad_clip: float = 5.0              # max gradient norm; 0 disables
    batch_size: int = 32                # excerpts per step (per process)
    blocks_per_excerpt: int = 4         # each excerpt gives this many 30-frame blocks
    steps_per_epoch: int = 200
    epochs: int = 40
    patience: int = 10                  # epochs without a better validation SDR; 0 disables
    valid_seconds: float = 30.0         # of each validation track, around its middle
    checkpoint_every: int = 0           # steps between extra checkpoints; 0: each epoch only
    max_minutes: float = 0.0            # stop after the epoch that passes this wall time; 0: no limit
    seed: int = 42
    init: str | None = None             # model file whose weights start the run (fine-tuning)
    lookahead: int | None = None        # score only block position context-1-N (causal inference)
    micro_batch: int = 8                # excerpts per micro-batch of a step (0: the whole batch)
    precision: str = "fp32"             # "bf16": matrix products with bfloat16 operands
    mir1k: str | None = None            # MIR-1K root: real voices in training and validation
    karaoke_cache: str | None = None    # where its decoded clips are kept (default OUTDIR/karaoke-*)
    real_vocals_p: float = 0.5          # share of excerpts whose vocals become MIR-1K singing
    karaoke_share: float = 0.25         # MIR-1K karaoke excerpts per step, as a share of batch_size
    real_speed: float = 1.0             # MIR-1K excerpts played at speeds in [1/x, x] (1: as recorded)
    real_eq_db: float = 0.0             # MIR-1K voices through random equalisers of +-x dB (0: off)
    real_formant: float = 1.0           # MIR-1K voices' formants moved by factors in [1/x, x] (1: off)
    real_level_db: tuple = (-8.0, 3.0)  # voice RMS against the accompaniment, drawn uniformly
    real_valid_clips: int = 24          # held-out clips scored after each epoch (x 2 levels)
    grouped_share: float = 0.5          # excerpts of bass-in-other songs per step, as a share of batch_size
    ema: float = 0.0                    # decay of a moving average of the weights, validated and saved (0: off)
    track_cap_seconds: float = 0.0      # a track weighs at most this many seconds of excerpt starts (0: no cap)
    select_on: str = "auto"             # best model by: synthetic, real, auto (real when mir1k is set)
    device: str = "cpu"
    augment: dict = field(default_factory=lambda: AugmentConfig().to_dict())
    tensorboard: bool = True

    def validate(self) -> "TrainConfig":
        problems = []
        for f in dataclasses.fields(self):     # NaN passes every comparison below unnoticed
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name} must be a finite number, got {value}")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}")
        if self.target not in TARGETS:
            problems.append(f"target must be one of {', '.join(TARGETS)}")
        if self.level_balance and self.loss not in LEVEL_BALANCE_LOSSES:
            problems.append("level_balance needs the mse or l1 loss")
        if self.optimiser not in OPTIMISERS:
            problems.append(f"optimiser must be one of {', '.join(OPTIMISERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}")
        for name in ("batch_size", "blocks_per_excerpt", "steps_per_epoch", "epochs"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.lr <= 0:
            problems.append("lr must be positive")
        if self.lookahead is not None and self.lookahead < 0:
            problems.append("lookahead must be at least 0")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.micro_batch < 0:
            problems.append("micro_batch must be at least 0")
        if not 0 <= self.real_vocals_p <= 1 or not 0 <= self.karaoke_share <= 4:
            problems.append("real_vocals_p must be in [0, 1] and karaoke_share in [0, 4]")
        if not 0 <= self.grouped_share <= 4:
            problems.append("grouped_share must be in [0, 4]")
        if not 0 <= self.ema < 1:
            problems.append("ema must be in [0, 1)")
        if self.track_cap_seconds < 0:
            problems.append("track_cap_seconds must be at least 0")
        if not 1 <= self.real_speed <= 2:
            problems.append("real_speed must be in [1, 2]")
        if not 0 <= self.real_eq_db <= 24:
            problems.append("real_eq_db must be in [0, 24]")
        if not 1 <= self.real_formant <= 1.5:
            problems.append("real_formant must be in [1, 1.5]")
        if len(self.real_level_db) != 2 or self.real_level_db[0] > self.real_level_db[1]:
            problems.append("real_level_db must be (low, high)")
        if self.select_on not in ("auto", "synthetic", "real"):
            problems.append("select_on must be auto, synthetic or real")
        if self.select_on == "real" and not self.mir1k:
            problems.append("select_on real needs mir1k")
        if self.valid_seconds <= 0:
            problems.append("valid_seconds must be positive")
        if problems:
            raise ConvSepError("invalid training settings: " + "; ".join(problems))
        AugmentConfig.from_dict(self.augment)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConvSepError(f"unknown training settings {sorted(unknown)}")
        return cls(**data).validate()
