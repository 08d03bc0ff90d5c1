"""Training-step throughput (blocks per second) of a ConvSep preset.

Two settings, each a full step (forward, soft-mask MSE loss, backward, Adam):

- ``model only``: precomputed magnitude blocks (mixture and sources) already on the device;
- ``with data``: a ``DeviceCache`` of int16 stems on the device (random content, same layout
  as a prepared corpus) -> ``ExcerptSampler`` with every augmentation (cross-song mixing,
  gain, channel swap, channel mute, source dropout, silence rejection) -> STFT of the
  sources on the device -> model -> loss -> Adam, i.e. ``convsep.training.step.LossComputer``.

On CUDA each is measured in fp32 and under bf16 autocast (``--precision``).

    python benchmarks/training_speed.py [--device cpu|cuda] [--batch 64] [--blocks-per-excerpt 4]
        [--precision fp32 bf16] [--steps 10] [--profile]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, synchronizer, timed, write_results  # noqa: E402

import torch  # noqa: E402

from convsep.data.augment import AugmentConfig  # noqa: E402
from convsep.data.cache import DeviceCache  # noqa: E402
from convsep.data.sampler import ExcerptSampler  # noqa: E402
from convsep.losses import compute_loss, masked_estimates  # noqa: E402
from convsep.models import ConvSep, preset  # noqa: E402
from convsep.training.step import LossComputer, batch_to_blocks, excerpt_samples  # noqa: E402

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


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="excerpts per step (default 64 on CPU, 1024 on CUDA)")
    parser.add_argument("--blocks-per-excerpt", type=int, default=4)
    parser.add_argument("--precision", nargs="+", default=None, help="fp32 and/or bf16 (default: fp32 on CPU, both on CUDA)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top operators of one step per setting")
    parser.add_argument("--name", default=None, help="results/NAME.json (default: training_speed_DEVICE)")
    args = parser.parse_args()
    info = machine(args.device)                   # date and load average at the start
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (1024 if cuda else 64)
    precisions = args.precision or (["fp32", "bf16"] if cuda else ["fp32"])
    sync = synchronizer(args.device)

    cfg = preset(args.preset)
    torch.manual_seed(0)
    model = ConvSep(cfg).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    loss_of = LossComputer(model, "mse", device=device)
    length = excerpt_samples(cfg, args.blocks_per_excerpt)
    cache = synthetic_cache(device)
    sampler = ExcerptSampler(cache, length, batch, AugmentConfig(), generator=0)
    blocks_per_step = batch * args.blocks_per_excerpt
    with torch.no_grad():
        sources = sampler.sample()
        if cfg.channels == 1:
            sources = sources.mean(2, keepdim=True)
        fixed_mix, fixed_src = batch_to_blocks(sources, loss_of.stft, cfg.context)

    def step_model_only(precision: str) -> None:
        with autocast(device, precision):
            output = model(fixed_mix)
            estimates = masked_estimates(output, fixed_mix * cfg.input_scale, cfg.mask_power)
            loss = compute_loss("mse", estimates, fixed_src * cfg.input_scale, cfg.sources, None)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def step_with_data(precision: str) -> None:
        batch_sources = sampler.sample()
        with autocast(device, precision):
            loss = loss_of(model, batch_sources)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    results, rows = [], []
    for precision in precisions:
        for label, step in (("model only", step_model_only), ("with data", step_with_data)):
            def run(step=step, precision=precision) -> None:
                for _ in range(args.steps):
                    step(precision)
            t = timed(run, repeats=args.repeats, warmup=1, sync=sync)
            per_step = t["median_s"] / args.steps
            entry = {"setting": label, "precision": precision, "batch_excerpts": batch,
                     "blocks_per_step": blocks_per_step, "step_s": per_step,
                     "blocks_per_s": blocks_per_step / per_step, **t}
            results.append(entry)
            rows.append([label, precision, blocks_per_step, f"{per_step * 1000:.1f}",
                         f"{entry['blocks_per_s']:,.0f}"])
            print(f"{label:<11} {precision}: {per_step * 1000:.1f} ms/step, {entry['blocks_per_s']:,.0f} blocks/s",
                  flush=True)
            if args.profile:
                from torch.profiler import ProfilerActivity, profile
                activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
                with profile(activities=activities) as prof:
                    step(precision)
                    sync()
                key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
                print(prof.key_averages().table(sort_by=key, row_limit=15))
    print()
    print_table(["setting", "precision", "blocks/step", "ms/step", "blocks/s"], rows)
    sampler_only = timed(lambda: [sampler.sample() for _ in range(args.steps)], repeats=args.repeats, sync=sync)
    print(f"\nsampler alone: {sampler_only['median_s'] / args.steps * 1000:.1f} ms per batch of {batch} "
          f"excerpts of {length} samples")
    write_results(args.name or f"training_speed_{device.type}",
                  {"machine": info, "preset": args.preset, "excerpt_samples": length,
                   "sampler_ms_per_batch": sampler_only["median_s"] / args.steps * 1000,
                   "results": results})


if __name__ == "__main__":
    main()
