"""The training loop: cache -> sampler -> loss -> step, validation through the Separator,
best and last checkpoints, exact resume, early stopping, logs."""
from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from convsep.data import AugmentConfig, ExcerptSampler, open_cache, prepare_cache
from convsep.data.cache import merge_caches
from convsep.data.karaoke_bank import KaraokeBank, karaoke_sources, place_vocals
from convsep.data.real_songs import FOLDERS as REAL_FOLDERS
from convsep.errors import ConvSepError
from convsep.evaluate.karaoke_scores import karaoke_mixtures, score_karaoke
from convsep.evaluate.sdr import global_sdr
from convsep.io.atomic import atomic_write_bytes
from convsep.io.filesafety import remove_created_folders
from convsep.models import ConvSep, preset
from convsep.models.modelfile import load_model, save_model
from convsep.models.widen import WIDTHS, widen, widening_problem
from convsep.runtime.allocator import keep_freed_memory
from convsep.separation.realtime import causal_separate
from convsep.separation.separator import Separator
from convsep.training import distributed
from convsep.training.checkpoint import config_difference, load_checkpoint, save_checkpoint
from convsep.training.config import TrainConfig
from convsep.training.ema import WeightAverage
from convsep.training.logs import TensorBoardLog
from convsep.training.step import LossComputer, excerpt_samples

BEST, LAST, HISTORY, CONFIG = "best.pt", "last.ckpt", "history.json", "config.json"


def _optimiser(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimiser == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, rho=0.95, eps=1e-6, weight_decay=config.weight_decay)
    if config.optimiser == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimiser):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs * config.steps_per_epoch)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="max", factor=0.5,
                                                          patience=max(1, config.patience // 3))
    return None


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False,
                 progress: bool = True):
        self.config = config.validate()
        self.ctx, self.device = distributed.init(config.device)
        if torch.device(self.device).type == "cpu":
            keep_freed_memory()
        self.progress = progress and self.ctx.is_main
        self.outdir = Path(config.outdir)
        self._created: list[Path] = []
        self._check_outdir(resume, overwrite)
        try:
            torch.manual_seed(config.seed)
            self.model = ConvSep(preset(config.model, **config.model_overrides)).to(self.device)
            self.model_config = self.model.config
            if config.init and not resume:
                self._initialise(config.init)
            self.average = WeightAverage(self.model, config.ema) if config.ema else None
            self.net = self.model
            if self.ctx.distributed:
                self.net = torch.nn.parallel.DistributedDataParallel(
                    self.model, device_ids=[self.ctx.local_rank] if self.device.startswith("cuda") else None)
            self.loss_of = LossComputer(self.model, config.loss, config.frequency_weighting, self.device,
                                        lookahead=config.lookahead, micro_batch=config.micro_batch,
                                        precision=config.precision, target=config.target,
                                        level_balance=config.level_balance)
            self.optimiser = _optimiser(config, self.model.parameters())
            self.scheduler = _scheduler(config, self.optimiser)
            self.cache = self._open_data()
            generator = torch.Generator(device=self.device).manual_seed(config.seed * 1000 + self.ctx.rank)
            # Songs whose bass plays inside "other" get a sampler of their own, scored as groups.
            grouped = bool(self.cache.select(split="train", bass_in_other=True))
            length = excerpt_samples(self.model_config, config.blocks_per_excerpt)
            augment = AugmentConfig.from_dict(config.augment)
            cap = round(config.track_cap_seconds * self.cache.rate) or None
            self.sampler = ExcerptSampler(self.cache.to_device(self.device, split="train",
                                                               bass_in_other=False if grouped else None),
                                          length, config.batch_size, augment, generator, track_cap=cap)
            self.grouped_sampler = None
            if grouped and config.grouped_share > 0:
                self.grouped_sampler = ExcerptSampler(self.cache.to_device(self.device, split="train", bass_in_other=True),
                                                      length, max(1, round(config.grouped_share * config.batch_size)),
                                                      augment, generator, track_cap=cap)
            self.real_songs = any(t.subset in REAL_FOLDERS for t in self.cache.tracks)
            self.valid = self._validation_tracks() if self.ctx.is_main else []
            self.karaoke = self._karaoke_bank("train") if config.mir1k else None
            self.real_valid = self._real_validation() if config.mir1k and self.ctx.is_main else []
            self.step, self.history, self.best = 0, [], {"sdr": -math.inf, "epoch": None}
            if resume:
                self._restore(load_checkpoint(self.outdir / LAST))
        except BaseException:
            # a run that fails while setting up leaves no empty run folder behind
            remove_created_folders(self._created)
            raise

    # -- set-up -----------------------------------------------------------------------
    def _check_outdir(self, resume: bool, overwrite: bool) -> None:
        last = self.outdir / LAST
        if resume:
            if not last.exists():
                raise ConvSepError(f"{self.outdir}: nothing to resume (no {LAST}); drop --resume to start")
            return
        if last.exists() and not overwrite:
            raise ConvSepError(f"{self.outdir} holds a run; pass --resume to continue it or --overwrite to start over")
        if self.ctx.is_main:
            try:
                self._created = [p for p in (self.outdir, *self.outdir.parents) if not p.exists()]
                self.outdir.mkdir(parents=True, exist_ok=True)
                if overwrite:
                    for name in (BEST, LAST, HISTORY):
                        (self.outdir / name).unlink(missing_ok=True)
                    shutil.rmtree(self.outdir / "tb", ignore_errors=True)
            except OSError as exc:
                raise ConvSepError(f"{self.outdir}: cannot write the output folder ({exc.strerror})") from None

    def _initialise(self, path: str) -> None:
        """Starts from a model file's weights (fine-tuning). Its config must be the run's, or
        the same with wider layers: then it is widened without changing its function."""
        model, _ = load_model(path)
        diff = config_difference(model.config.to_dict(), self.model_config.to_dict())
        retimed = {**model.config.to_dict(), "hop": self.model_config.hop, "block_hop": self.model_config.block_hop}
        if diff and config_difference(retimed, self.model_config.to_dict()) is None:
            # Same shapes at another hop: the filters carry over, their timing is learnt anew.
            if self.ctx.is_main:
                print(f"train: --init {path}: hop {model.config.hop} -> {self.model_config.hop} (weights as they are)")
            diff = None
        if diff and widening_problem(model.config, self.model_config) is None:
            model = widen(model, self.model_config)
            if self.ctx.is_main:
                widths = ", ".join(f"{n} {getattr(model.config, n)}" for n in WIDTHS)
                print(f"train: --init {path}: widened to {widths} (same function)")
        elif diff:
            hint = ("; scripts/reframe_model.py moves a model to another n_fft"
                    if model.config.n_fft != self.model_config.n_fft else "")
            raise ConvSepError(f"--init {path}: the model was made with another config "
                               f"({diff.replace('checkpoint', 'file')}); use its --model and --model-config, "
                               f"or wider conv1_filters / conv2_filters / bottleneck{hint}")
        self.model.load_state_dict(model.state_dict())

    def _open_data(self):
        """The run's data: ROOT, plus each of ``extra_roots`` merged into one cache."""
        roots = [self.config.root, *self.config.extra_roots]
        caches = [self._open_dataset(root, n) for n, root in enumerate(roots)]
        return merge_caches(caches, self.outdir / "merged-cache") if len(caches) > 1 else caches[0]

    def _open_dataset(self, root_text: str, n: int):
        root = Path(root_text)
        if not root_text or not root.exists():
            raise ConvSepError(f"{root}: no such dataset folder")
        if (root / "index.json").exists():
            return open_cache(root)
        cache_dir = Path(self.config.cache) if self.config.cache else self.outdir / "cache"
        if n:
            cache_dir = cache_dir.with_name(f"{cache_dir.name}-{n}")
        if self.ctx.is_main:
            prepare_cache(root, cache_dir, subsets=("train",), is_wav=self.config.is_wav,
                          layout=self.config.layout, progress=self.progress)
        distributed.broadcast(self.ctx, None)  # the others wait for the cache
        return open_cache(cache_dir)

    def _validation_tracks(self) -> list[tuple[str, torch.Tensor]]:
        limit = int(self.config.valid_seconds * self.cache.rate)
        tracks = []
        chosen = self.cache.select(split="valid")
        if self.real_songs:     # the real four-stem validation set alone picks the model; the other
            chosen = [i for i in chosen if self.cache.tracks[i].subset in REAL_FOLDERS]  # roots' stay unused
        for i in chosen:
            audio = self.cache.load(i)
            start = max(0, (audio.shape[-1] - limit) // 2)  # the middle: intros often lack sources
            tracks.append((self.cache.tracks[i].name, torch.from_numpy(audio[..., start:start + limit].copy())))
        if not tracks:
            print("train: note: the dataset has no validation split; the best model is the last one")
        return tracks

    def _karaoke_bank(self, split: str) -> KaraokeBank:
        folder = Path(self.config.karaoke_cache) if self.config.karaoke_cache else self.outdir
        return KaraokeBank.load(self.config.mir1k, folder / f"karaoke-{split}", split, self.cache.rate,
                                device=self.device if split == "train" else "cpu")

    def _real_validation(self) -> list:
        return karaoke_mixtures(self._karaoke_bank("valid"), self.config.real_valid_clips)

    # -- state ------------------------------------------------------------------------
    def _state(self) -> dict:
        samplers = distributed.gather(self.ctx, self.sampler.state_dict())
        return {
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "samplers": samplers,
            "rng": torch.get_rng_state(),
            "step": self.step,
            "history": self.history,
            "best": self.best,
            "ema": self.average.state_dict() if self.average else None,
        }

    def _restore(self, state: dict) -> None:
        diff = config_difference(state["model_config"], self.model_config.to_dict())
        if diff:
            raise ConvSepError(f"{self.outdir / LAST} was made with another model config ({diff}); "
                               "use the same model options or another --outdir")
        if len(state["samplers"]) != self.ctx.world_size:
            raise ConvSepError(f"{self.outdir / LAST} was made with {len(state['samplers'])} processes; "
                               f"resume with the same number (now {self.ctx.world_size})")
        self.model.load_state_dict(state["model"])
        if self.average is not None:
            if state.get("ema") is None:
                raise ConvSepError(f"{self.outdir / LAST} was made without --ema; resume without it or use another --outdir")
            self.average.load_state_dict(state["ema"])
        self.optimiser.load_state_dict(state["optimiser"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["samplers"][self.ctx.rank])
        torch.set_rng_state(state["rng"])
        self.step, self.history, self.best = state["step"], state["history"], state["best"]

    def _save(self) -> None:
        state = self._state()
        if self.ctx.is_main:
            save_checkpoint(self.outdir / LAST, state)
            atomic_write_bytes(self.outdir / HISTORY, json.dumps(self.history, indent=1).encode())

    def _metadata(self, scores: dict) -> dict:
        return {
            "trained_on": [self.config.root, *self.config.extra_roots] if self.config.extra_roots else self.config.root,
            "steps": self.step,
            "epochs": self.step // self.config.steps_per_epoch,
            "blocks_seen": self.step * self.config.batch_size * self.config.blocks_per_excerpt * self.ctx.world_size,
            "validation_global_sdr": scores,
            "train_config": self.config.to_dict(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    # -- validation -------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, log: TensorBoardLog) -> dict[str, float]:
        """Global SDR per source on the validation tracks (mean over tracks); with a
        look-ahead, of the causal (real-time) separation it trains for."""
        if not self.valid and not self.real_valid:
            return {}
        self.model.eval()
        separator = Separator(self.model, device=self.device)
        sources = self.model_config.sources
        scores = []
        for k, (_name, track) in enumerate(self.valid):
            refs = track if self.model_config.channels == 2 else track.mean(1, keepdim=True)
            if self.config.lookahead is None:
                estimates = separator.separate_tensor(refs.sum(0))
            else:   # what the causal separator with this look-ahead gives (convsep stream)
                estimates = causal_separate(self.model, refs.sum(0).to(self.device), self.config.lookahead).cpu()
            scores.append(global_sdr(refs.transpose(1, 2), estimates.transpose(1, 2)).numpy())
            if k == 0:
                seconds = min(refs.shape[-1], 10 * self.cache.rate)
                mixture = refs.sum(0)[:, :seconds].to(self.device)
                masks = separator.masks(separator.stft(mixture)).cpu()
                log.example("valid", mixture.cpu(), estimates[..., :seconds], masks, sources, self.cache.rate, self.step)
        statistic = np.median if self.real_songs else np.mean     # real songs: the field's median
        result = {source: float(v) for source, v in zip(sources, statistic(scores, axis=0))} if scores else {}
        if self.real_valid:
            real = score_karaoke(separator, self.real_valid)
            result["real_vocals"], result["real_accompaniment"] = real["vocals"], real["accompaniment"]
        self.model.train()
        return result

    def _selection_score(self, scores: dict) -> float:
        """What picks the best model: the mean synthetic SDR, or (real vocals + real
        accompaniment) / 2 on the held-out singers."""
        real = self.config.select_on == "real" or (self.config.select_on == "auto" and "real_vocals" in scores)
        if real:
            return (scores["real_vocals"] + scores["real_accompaniment"]) / 2
        return float(np.mean([v for k, v in scores.items() if not k.startswith("real_")]))

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """The training loss on consecutive excerpts of the validation tracks (no augmentation)."""
        if not self.valid:
            return None
        length = self.sampler.excerpt_samples
        losses = []
        for _, track in self.valid:
            count = min(track.shape[-1] // length, 64)
            if count:
                excerpts = track[..., :count * length].reshape(*track.shape[:2], count, length).movedim(2, 0)
                losses.append(self.loss_of(self.model, excerpts.to(self.device)).item())
        return float(np.mean(losses)) if losses else None

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.config
        if self.ctx.is_main:
            atomic_write_bytes(self.outdir / CONFIG, json.dumps(
                {"train": cfg.to_dict(), "model": self.model_config.to_dict()}, indent=1).encode())
        log = TensorBoardLog(self.outdir / "tb" if cfg.tensorboard and self.ctx.is_main else None)
        self.model.train()
        started = time.perf_counter()
        if self.step == 0 and not self.history:
            self._record_untrained()
        try:
            while self.step < cfg.epochs * cfg.steps_per_epoch:
                epoch = self.step // cfg.steps_per_epoch
                if self.best.get("epoch") is not None and cfg.patience and epoch - self.best["epoch"] > cfg.patience:
                    if self.ctx.is_main:
                        print(f"train: early stop: no better validation SDR for {cfg.patience} epochs")
                    break
                self._epoch(epoch, log)
                out_of_time = cfg.max_minutes and time.perf_counter() - started > 60 * cfg.max_minutes
                if distributed.broadcast(self.ctx, out_of_time) and self.step < cfg.epochs * cfg.steps_per_epoch:
                    if self.ctx.is_main:
                        print(f"train: stopping after {cfg.max_minutes:g} minutes (--max-minutes); --resume continues")
                    break
        finally:
            log.close()
        if self.ctx.is_main and not (self.outdir / BEST).exists():
            with self._validated_weights():
                save_model(self.outdir / BEST, self.model, self._metadata({}))
        agree = self._ranks_agree()
        self.net = self.model  # the DDP wrapper holds the process group: released before it closes
        gc.collect()           # its reducer's gloo work goes now, not in the interpreter's teardown
        distributed.close(self.ctx)
        return {"step": self.step, "best": self.best, "history": self.history, "ranks_agree": agree,
                "processes": self.ctx.world_size, "is_main": self.ctx.is_main}

    def _record_untrained(self) -> None:
        """Epoch 0 of the history: the untrained model's validation scores, for comparison."""
        scores = distributed.broadcast(self.ctx, self.validate(TensorBoardLog(None)) if self.ctx.is_main else {})
        valid_loss = self.validation_loss() if self.ctx.is_main else None
        self.history.append({"epoch": 0, "step": 0, "train_loss": None, "valid_loss": valid_loss,
                             "valid_sdr": scores, "valid_sdr_mean": self._selection_score(scores) if scores else None,
                             "lr": self.optimiser.param_groups[0]["lr"], "seconds": 0.0, "blocks_per_second": None})

    def _epoch(self, epoch: int, log: TensorBoardLog) -> None:
        cfg = self.config
        started, losses = time.perf_counter(), []
        first = self.step - epoch * cfg.steps_per_epoch
        bar = tqdm(range(first, cfg.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not self.progress, leave=False)
        for _ in bar:
            losses.append(self._train_step())
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step % cfg.steps_per_epoch:
                self._save()
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
        elapsed = time.perf_counter() - started
        train_loss = distributed.mean(self.ctx, float(np.mean(losses)) if losses else float("nan"))
        with self._validated_weights():
            scores = self.validate(log) if self.ctx.is_main else {}
            scores = distributed.broadcast(self.ctx, scores)
            valid_loss = self.validation_loss() if self.ctx.is_main else None
            mean_sdr = self._selection_score(scores) if scores else float("nan")
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and scores:
                self.scheduler.step(mean_sdr)
            improved = (not scores) or mean_sdr > self.best["sdr"]
            if improved:
                self.best = {"sdr": mean_sdr if scores else None, "epoch": epoch, "scores": scores}
                if self.ctx.is_main:
                    save_model(self.outdir / BEST, self.model, self._metadata(scores))
        blocks = len(losses) * cfg.batch_size * cfg.blocks_per_excerpt * self.ctx.world_size
        record = {"epoch": epoch + 1, "step": self.step, "train_loss": train_loss, "valid_loss": valid_loss, "valid_sdr": scores,
                  "valid_sdr_mean": mean_sdr if scores else None, "lr": self.optimiser.param_groups[0]["lr"],
                  "seconds": elapsed, "blocks_per_second": blocks / max(elapsed, 1e-9)}
        self.history.append(record)
        self._save()
        if self.ctx.is_main:
            log.scalars({"loss/train": train_loss, "loss/valid": valid_loss, "lr": record["lr"], "speed/blocks_per_second":
                         record["blocks_per_second"], **{f"valid_sdr/{k}": v for k, v in scores.items()},
                         "valid_sdr/mean": mean_sdr}, self.step)
            print(self._summary(record))

    def _validated_weights(self):
        """What validation scores and best.pt holds: the weight average with --ema, else the
        model's own weights."""
        return self.average.applied(self.model) if self.average is not None else contextlib.nullcontext()

    def _summary(self, r: dict) -> str:
        short = lambda k: "R" + k[5:8] if k.startswith("real_") else k[:3]  # noqa: E731
        sdr = "  ".join(f"{short(k)} {v:5.2f}" for k, v in r["valid_sdr"].items())
        valid = f"valid SDR {sdr} (mean {r['valid_sdr_mean']:.2f}, best {self.best['sdr']:.2f} @ {self.best['epoch'] + 1})" \
            if r["valid_sdr"] else "no validation"
        vloss = f" / valid {r['valid_loss']:.5g}" if r.get("valid_loss") is not None else ""
        return (f"epoch {r['epoch']:3d}/{self.config.epochs}  loss {r['train_loss']:.5g}{vloss}  {valid}  "
                f"lr {r['lr']:.3g}  {r['blocks_per_second']:.0f} blocks/s  {r['seconds']:.1f} s")

    def _bandwidth_bins(self, hz: torch.Tensor) -> torch.Tensor | None:
        """Band limits in Hz (B,) -> bins kept (B,), or None when every example is full band."""
        if bool(torch.isinf(hz).all()):
            return None
        cfg = self.model_config
        bins = torch.ceil(hz.clamp(max=self.cache.rate / 2) * cfg.n_fft / self.cache.rate).long()
        return bins.clamp(1, cfg.bins)

    def _draw_level(self, n: int) -> torch.Tensor:
        low, high = self.config.real_level_db
        u = torch.rand(n, generator=self.sampler.generator, device=self.device)
        return low + (high - low) * u

    def _karaoke_excerpts(self, n: int, length: int) -> tuple:
        """``KaraokeBank.sample`` with the configured speeds, equalisers and formant moves."""
        cfg = self.config
        return self.karaoke.sample(n, length, self.sampler.generator, cfg.real_speed, cfg.real_eq_db, cfg.real_formant)

    def _real_batches(self, batch: torch.Tensor, band_hz: torch.Tensor) -> list:
        """MIR-1K singing into the batch: some excerpts' vocals replaced (band-limited), and
        karaoke excerpts scored as vocals / accompaniment. [(sources, band_hz, groups, share)]"""
        cfg, g, L = self.config, self.sampler.generator, batch.shape[-1]
        B = batch.shape[0]
        replace = (torch.rand(B, generator=g, device=self.device) < cfg.real_vocals_p).nonzero().squeeze(1)
        if replace.numel():
            vocals, _, rms, speed = self._karaoke_excerpts(replace.numel(), L)
            place_vocals(batch, vocals, rms[:, 0], replace, self._draw_level(replace.numel()))
            band_hz[replace] = self.karaoke.bandwidth_hz * speed
        k = round(cfg.karaoke_share * B)
        parts = [(batch, band_hz, None, B)]
        if k:
            vocals, accomp, rms, speed = self._karaoke_excerpts(k, L)
            gain_db = -6.0 * torch.rand(k, generator=g, device=self.device)
            sources = karaoke_sources(vocals, accomp, rms, self._draw_level(k), gain_db, batch.shape[1])
            parts.append((sources, self.karaoke.bandwidth_hz * speed,
                          ((0,), tuple(range(1, batch.shape[1]))), k))
        return parts

    def _train_step(self) -> float:
        batch = self.sampler.sample()
        band_hz = self.sampler.vocals_bandwidth_hz().clone()
        parts = self._real_batches(batch, band_hz) if self.karaoke is not None else [(batch, band_hz, None, batch.shape[0])]
        if self.grouped_sampler is not None:
            grouped = self.grouped_sampler.sample()
            full_band = torch.full((grouped.shape[0],), float("inf"), device=self.device)
            parts.append((grouped, full_band, ((0,), (1,), (2, 3)), grouped.shape[0]))
        total = sum(p[3] for p in parts)
        self.optimiser.zero_grad(set_to_none=True)
        loss = 0.0
        for sources, hz, groups, count in parts:
            loss += (count / total) * self.loss_of.backward(self.net, sources, self._bandwidth_bins(hz), groups,
                                                            share=count / total)
        if not math.isfinite(loss):
            raise ConvSepError(f"the loss became {loss} at step {self.step}; lower --lr or check the data")
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimiser.step()
        if self.average is not None:
            self.average.update(self.model)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            self.scheduler.step()
        self.step += 1
        return loss

    def _ranks_agree(self) -> bool:
        """Whether every process ends with the same weights (always true for one process)."""
        checksum = float(sum(p.detach().double().sum().item() for p in self.model.parameters()))
        sums = distributed.gather(self.ctx, checksum)
        return all(s == sums[0] for s in sums)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns {"step", "best", "history", "ranks_agree"}."""
    return Trainer(config, resume, overwrite, progress).run()
