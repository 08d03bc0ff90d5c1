"""Training-step throughput (blocks per second) of a ConvSep preset, the plain step against
the fast one, side by side in one run at the same batch.

Each setting is a full step: a ``DeviceCache`` of int16 stems on the device (random content,
same layout as a prepared corpus) -> ``ExcerptSampler`` with every augmentation -> STFT ->
model -> soft masks -> MSE -> backward -> Adam.

- ``reference``: the step as it was first written: the batch gathered in one indexing op
  (``ExcerptSampler(gather="index")``, since then over whole rows, 3-6x faster than the
  first per-sample index), then the whole batch at once through plain autograd
  (``LossComputer(fused=False, micro_batch=0)``);
- ``fused``: the trainer's path: the batch gathered row by row on the CPU, the last decoder
  layer, masks and loss as one autograd function, magnitudes in its layout, micro-batches
  of ``--micro-batch`` excerpts;
- ``--precision bf16`` adds both with bfloat16 matrix products (``LossComputer(precision=)``,
  ``convsep train --precision bf16``); speed-ups are against fp32 ``reference``.

Settings are interleaved over ``--repeats`` rounds and the median is kept, so a machine
shared with other jobs slows each alike; both wall time and the process's CPU time are
reported (on a loaded machine the CPU time is the steadier figure).

    python benchmarks/training_speed.py [--device cpu|cuda] [--batch 16] [--blocks-per-excerpt 4]
        [--precision fp32 bf16] [--steps 5] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, synchronizer, write_results  # noqa: E402

import torch  # noqa: E402

from convsep.data.augment import AugmentConfig  # noqa: E402
from convsep.data.cache import DeviceCache  # noqa: E402
from convsep.data.sampler import ExcerptSampler  # noqa: E402
from convsep.models import ConvSep, preset  # noqa: E402
from convsep.training.step import LossComputer, excerpt_samples  # noqa: E402

RATE = 44100


def synthetic_cache(device: torch.device, tracks: int = 8, seconds: float = 60.0, seed: int = 0) -> DeviceCache:
    """int16 (4, 2, tracks x seconds) of noise with a slow loudness envelope, on the device."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * RATE)
    audio = torch.randn(4, 2, tracks * n, generator=g)
    envelope = (torch.sin(torch.arange(tracks * n) * (2 * torch.pi / (3 * RATE))) + 1.1) / 2.1
    audio = (audio * envelope * 0.1 * 32767).clamp(-32767, 32767).to(torch.int16)
    return DeviceCache(audio=audio.to(device), offsets=torch.arange(tracks, device=device) * n,
                       lengths=torch.full((tracks,), n, device=device),
                       scales=torch.ones(tracks, device=device), names=[f"t{i}" for i in range(tracks)],
                       rate=RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--model-config", default="{}", help='overrides of the preset, e.g. \'{"conv1_filters": 96}\'')
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="excerpts per step (default 16 on CPU, 1024 on CUDA)")
    parser.add_argument("--blocks-per-excerpt", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--precision", nargs="+", default=None, help="fp32 and/or bf16 (default: both; fp32 is always run, as the baseline)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--name", default=None, help="results/NAME.json (default: training_speed_DEVICE)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(args.device)                   # date and load average at the start
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (1024 if cuda else 16)
    precisions = ["fp32"] + [p for p in (args.precision or ["bf16"]) if p != "fp32"]
    sync = synchronizer(args.device)

    cfg = preset(args.preset, **json.loads(args.model_config))
    torch.manual_seed(0)
    model = ConvSep(cfg).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    cache = synthetic_cache(device)
    samples = excerpt_samples(cfg, args.blocks_per_excerpt)
    samplers = {gather: ExcerptSampler(cache, samples, batch, AugmentConfig(), generator=0, gather=gather)
                for gather in ("index", "auto")}
    paths = {(path, precision): (LossComputer(model, "mse", device=device, fused=path == "fused",
                                              micro_batch=args.micro_batch if path == "fused" else 0,
                                              precision=precision),
                                 samplers["index" if path == "reference" else "auto"])
             for precision in precisions for path in ("reference", "fused")}
    blocks_per_step = batch * args.blocks_per_excerpt

    def step(setting) -> None:
        loss_of, sampler = paths[setting]
        sources = sampler.sample()
        optimiser.zero_grad(set_to_none=True)
        loss_of.backward(model, sources)
        optimiser.step()

    settings = list(paths)
    wall = {s: [] for s in settings}
    cpu = {s: [] for s in settings}
    for s in settings:                                                    # warm-up
        step(s)
    for _ in range(args.repeats):
        for s in settings:
            sync()
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(s)
            sync()
            wall[s].append((time.perf_counter() - w0) / args.steps)
            cpu[s].append((time.process_time() - c0) / args.steps)
    results, rows = [], []
    base = statistics.median(wall[("reference", "fp32")])
    base_cpu = statistics.median(cpu[("reference", "fp32")])
    for s in settings:
        w, c = statistics.median(wall[s]), statistics.median(cpu[s])
        results.append({"path": s[0], "precision": s[1], "batch_excerpts": batch, "blocks_per_step": blocks_per_step,
                        "micro_batch": args.micro_batch if s[0] == "fused" else 0,
                        "step_s": w, "cpu_s_per_step": c, "blocks_per_s": blocks_per_step / w,
                        "speedup_wall": base / w, "speedup_cpu": base_cpu / c, "wall_runs": wall[s], "cpu_runs": cpu[s]})
        rows.append([s[0], s[1], blocks_per_step, f"{w * 1000:.0f}", f"{c * 1000:.0f}",
                     f"{blocks_per_step / w:,.0f}", f"{base / w:.2f}x", f"{base_cpu / c:.2f}x"])
    print_table(["path", "precision", "blocks/step", "wall ms/step", "CPU ms/step", "blocks/s",
                 "speed-up (wall)", "speed-up (CPU)"], rows)
    write_results(args.name or f"training_speed_{device.type}",
                  {"machine": info, "preset": args.preset, "threads": torch.get_num_threads(),
                   "excerpt_samples": samples, "results": results})


if __name__ == "__main__":
    main()
