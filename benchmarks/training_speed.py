"""Training-step throughput (blocks per second) of a ConvSep preset: the step as it stood
before the real-music work, the plain step and the fast one, side by side in one run at the
same batch.

Each setting is a full step: a ``DeviceCache`` of int16 stems on the device (random content,
same layout as a prepared corpus) -> ``ExcerptSampler`` with every augmentation -> STFT ->
model -> soft masks -> MSE -> backward -> Adam.

- ``baseline``: the code of commit ``--baseline`` (default 8516b73, the last before the
  real-music work, when training ran about 300 blocks/s on 2 cores), unpacked from git
  history and run in a second process (``_baseline_step.py``) with glibc's default
  allocator, as it ran then; CPU only;
- ``reference``: that step rewritten in today's code: the batch gathered in one indexing op
  (``ExcerptSampler(gather="index")``, since then over whole rows, 3-6x faster than the
  first per-sample index), then the whole batch at once through plain autograd
  (``LossComputer(fused=False, micro_batch=0)``);
- ``fused``: the trainer's path: the batch gathered row by row on the CPU, the last decoder
  layer, masks and loss as one autograd function, magnitudes in its layout, micro-batches
  of ``--micro-batch`` excerpts;
- ``--precision bf16`` adds both with bfloat16 matrix products (``LossComputer(precision=)``,
  ``convsep train --precision bf16``);
- ``--targets magnitude phase-sensitive`` runs each path with both training targets
  (``convsep train --target``: the phase-sensitive one takes one more rFFT per channel).

This process sets the allocator as ``convsep train`` does on the CPU (``convsep.runtime.allocator``;
``--default-allocator`` leaves it as it was). Speed-ups are given against the baseline and
against fp32 ``reference``. Settings are interleaved over ``--repeats`` rounds and the median
is kept, so a machine shared with other jobs slows each alike; both wall time and each
process's CPU time are reported (on a loaded machine the CPU time is the steadier figure).

    python benchmarks/training_speed.py [--device cpu|cuda] [--batch 16] [--blocks-per-excerpt 4]
        [--precision fp32 bf16] [--targets magnitude phase-sensitive] [--steps 5] [--repeats 5]
        [--threads N] [--baseline REV|none]
        [--default-allocator]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import ROOT, machine, print_table, synchronizer, write_results  # noqa: E402
from _training_data import synthetic_cache  # noqa: E402

from convsep.data.augment import AugmentConfig  # noqa: E402
from convsep.data.sampler import ExcerptSampler  # noqa: E402
from convsep.models import ConvSep, preset  # noqa: E402
from convsep.runtime.allocator import keep_freed_memory  # noqa: E402
from convsep.training.step import TARGETS, LossComputer, excerpt_samples  # noqa: E402

BASELINE = "8516b73"
HERE = Path(__file__).resolve().parent


class BaselineStep:
    """The training step of commit ``rev``, run in a worker process on request."""

    def __init__(self, rev: str, workdir: Path, preset_name: str, overrides: str, batch: int,
                 blocks: int, threads: int):
        archive = workdir / "baseline.tar"
        try:
            with archive.open("wb") as out:
                subprocess.run(["git", "-C", str(ROOT), "archive", rev, "convsep"], stdout=out,
                               stderr=subprocess.PIPE, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or str(exc).encode()
            sys.exit(f"training_speed: --baseline {rev}: cannot read it from git history "
                     f"({detail.decode().strip()}); run from a clone, or pass --baseline none")
        with tarfile.open(archive) as tar:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(workdir / "tree", **safe)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir / "tree"), str(HERE)]),
                   OMP_NUM_THREADS=str(threads))
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_baseline_step.py"), preset_name, overrides, str(batch), str(blocks),
             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=workdir)
        ready = json.loads(self.process.stdout.readline() or "{}")
        if not Path(ready.get("ready", "/")).resolve().is_relative_to(workdir.resolve()):
            sys.exit(f"training_speed: the baseline worker did not start on commit {rev}'s code ({ready})")

    def time(self, steps: int) -> tuple[float, float]:
        """(wall, CPU) seconds per step over ``steps`` steps."""
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"training_speed: the baseline worker stopped (exit status {self.process.wait()})")
        answer = json.loads(line)
        return answer["wall_s"], answer["cpu_s"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--model-config", default="{}", help='overrides of the preset, e.g. \'{"conv1_filters": 96}\'')
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="excerpts per step (default 16 on CPU, 1024 on CUDA)")
    parser.add_argument("--blocks-per-excerpt", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--precision", nargs="+", default=None, help="fp32 and/or bf16 (default: both; fp32 is always run, as the baseline)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=["magnitude"],
                        help="training targets to time (the baseline is always magnitude)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--baseline", default=BASELINE,
                        help=f"commit whose training step is timed beside today's (default {BASELINE}; none: skip)")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it is in this process (as convsep train did before)")
    parser.add_argument("--name", default=None, help="results/NAME.json (default: training_speed_DEVICE)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(args.device)                   # date and load average at the start
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    tuned = not cuda and not args.default_allocator and keep_freed_memory()
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
    paths = {(path, precision, target): (LossComputer(model, "mse", device=device, fused=path == "fused",
                                                      micro_batch=args.micro_batch if path == "fused" else 0,
                                                      precision=precision, target=target),
                                         samplers["index" if path == "reference" else "auto"])
             for target in args.targets for precision in precisions for path in ("reference", "fused")}
    blocks_per_step = batch * args.blocks_per_excerpt

    def step(setting) -> None:
        loss_of, sampler = paths[setting]
        sources = sampler.sample()
        optimiser.zero_grad(set_to_none=True)
        loss_of.backward(model, sources)
        optimiser.step()

    with tempfile.TemporaryDirectory() as workdir:
        baseline = None
        if args.baseline != "none" and not cuda:
            baseline = BaselineStep(args.baseline, Path(workdir), args.preset, args.model_config, batch,
                                    args.blocks_per_excerpt, torch.get_num_threads())
        settings = ([("baseline", "fp32", "magnitude")] if baseline else []) + list(paths)
        wall = {s: [] for s in settings}
        cpu = {s: [] for s in settings}
        for s in paths:                                                   # warm-up
            step(s)
        for _ in range(args.repeats):
            for s in settings:
                if s[0] == "baseline":
                    w, c = baseline.time(args.steps)
                else:
                    sync()
                    w0, c0 = time.perf_counter(), time.process_time()
                    for _ in range(args.steps):
                        step(s)
                    sync()
                    w, c = (time.perf_counter() - w0) / args.steps, (time.process_time() - c0) / args.steps
                wall[s].append(w)
                cpu[s].append(c)
        if baseline:
            baseline.close()
    results, rows = [], []
    bases = [s for s in (("baseline", "fp32", "magnitude"), ("reference", "fp32", args.targets[0])) if s in wall]
    base = {b: (statistics.median(wall[b]), statistics.median(cpu[b])) for b in bases}
    for s in settings:
        w, c = statistics.median(wall[s]), statistics.median(cpu[s])
        entry = {"path": s[0], "precision": s[1], "target": s[2], "batch_excerpts": batch, "blocks_per_step": blocks_per_step,
                 "micro_batch": args.micro_batch if s[0] == "fused" else 0,
                 "step_s": w, "cpu_s_per_step": c, "blocks_per_s": blocks_per_step / w,
                 "wall_runs": wall[s], "cpu_runs": cpu[s]}
        row = [s[0], s[1], s[2], blocks_per_step, f"{w * 1000:.0f}", f"{c * 1000:.0f}", f"{blocks_per_step / w:,.0f}"]
        for b in bases:
            entry[f"speedup_wall_vs_{b[0]}"] = base[b][0] / w
            entry[f"speedup_cpu_vs_{b[0]}"] = base[b][1] / c
            row += [f"{base[b][0] / w:.2f}x", f"{base[b][1] / c:.2f}x"]
        results.append(entry)
        rows.append(row)
    print_table(["path", "precision", "target", "blocks/step", "wall ms/step", "CPU ms/step", "blocks/s"]
                + [f"vs {b[0]} ({kind})" for b in bases for kind in ("wall", "CPU")], rows)
    write_results(args.name or f"training_speed_{device.type}",
                  {"machine": info, "preset": args.preset, "model_config": json.loads(args.model_config),
                   "threads": torch.get_num_threads(), "excerpt_samples": samples,
                   "baseline_commit": args.baseline if baseline else None,
                   "allocator": "glibc thresholds raised (convsep.runtime.allocator)" if tuned else "default",
                   "results": results})


if __name__ == "__main__":
    main()
