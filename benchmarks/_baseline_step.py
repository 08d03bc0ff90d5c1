"""Worker of training_speed.py: the training step of an older commit, timed on request.

Started with PYTHONPATH at that commit's tree, so ``convsep`` is the commit's own. It builds
the step that commit's benchmark timed "with data" (sampler with every augmentation ->
``LossComputer`` -> backward -> Adam, the default allocator), takes a line with a step
count from stdin, runs that many steps and answers one JSON line: wall and CPU seconds per
step.

    PYTHONPATH=OLD_TREE python _baseline_step.py PRESET MODEL_CONFIG_JSON BATCH BLOCKS THREADS
"""
from __future__ import annotations

import json
import sys
import time

import torch
from _training_data import synthetic_cache

from convsep.data.augment import AugmentConfig
from convsep.data.sampler import ExcerptSampler
from convsep.models import ConvSep, preset
from convsep.training.step import LossComputer, excerpt_samples


def main() -> None:
    name, overrides, batch, blocks, threads = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    cfg = preset(name, **json.loads(overrides))
    torch.manual_seed(0)
    model = ConvSep(cfg).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    loss_of = LossComputer(model, "mse", device=torch.device("cpu"))
    sampler = ExcerptSampler(synthetic_cache(torch.device("cpu")), excerpt_samples(cfg, int(blocks)),
                             int(batch), AugmentConfig(), generator=0)

    def step() -> None:
        loss = loss_of(model, sampler.sample())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()                                                                # warm-up
    print(json.dumps({"ready": str(sys.modules["convsep"].__file__)}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        print(json.dumps({"wall_s": (time.perf_counter() - w0) / steps,
                          "cpu_s": (time.process_time() - c0) / steps}), flush=True)


if __name__ == "__main__":
    main()
