"""Where the separation time goes: convsep's stages on one segment, against the floor.

Times each stage of ``Separator._segment`` (as run for a segment in the middle of a long
track) with random weights, and the two halves of the floor (torch.stft, torch.istft of 4
stems) on the same audio, as medians over ``--repeats`` runs. ``--threads 1`` gives the
most stable figures on a shared machine.

    python benchmarks/separation_profile.py [--preset convsep-stereo] [--seconds 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import machine, print_table, timed, write_results  # noqa: E402

from convsep.dsp.masks import masked_mixtures  # noqa: E402
from convsep.models import PRESETS, ConvSep  # noqa: E402
from convsep.separation.separator import Separator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="convsep-stereo")
    parser.add_argument("--seconds", type=float, default=5.0, help="segment length (the Separator's default is 5)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--name", default="separation_profile", help="results/NAME.json")
    args = parser.parse_args()
    info = machine()                   # date and load average at the start
    if args.threads:
        torch.set_num_threads(args.threads)
        info["torch_threads"] = args.threads
    torch.manual_seed(0)
    cfg = PRESETS[args.preset]
    sep = Separator(ConvSep(cfg), segment_seconds=args.seconds)
    model, stft, hop = sep.model, sep.stft, sep.block_hop
    frames = sep.core_frames + 2 * sep.margin                        # one mid-track segment
    x = 0.1 * torch.randn(cfg.channels, (frames - 1) * cfg.hop + cfg.n_fft)
    core = slice(sep.margin, sep.margin + sep.core_frames)
    groups = [o.sources for o in sep.outputs]
    stages: list[tuple[str, object]] = []
    with torch.inference_mode():
        spec = stft.forward_padded(x).transpose(-1, -2)              # (C, F, bins)
        mag = spec.abs()
        T = cfg.context
        count = 1 + max(0, -(-(frames - T) // hop))
        w = model.conv1.weight[:, :, 0, :]

        def conv1() -> torch.Tensor:
            z = model.prepare_input(mag)
            out = z[0] @ w[:, 0].T
            for ch in range(1, cfg.channels):
                out.addmm_(z[ch], w[:, ch].T)
            return model._activate(out + model.conv1.bias)
        feats = conv1()
        feats = F.pad(feats, (0, 0, 0, (count - 1) * hop + T - frames))
        code = model._encode_features(feats.unfold(0, T, hop))
        est = sep._estimate_frames(mag)
        stems = masked_mixtures(est[:, :, core].clone(), spec[:, core], groups, sep.mask_power, overwrite=True)
        window = stft.window()
        full_spec = torch.stft(x, cfg.n_fft, cfg.hop, window=window, return_complex=True)
        four = full_spec.unsqueeze(0).expand(4, *full_spec.shape).reshape(-1, *full_spec.shape[1:])
        stages = [
            ("STFT (rFFT of windowed frames)", lambda: stft.forward_padded(x)),
            ("magnitude", lambda: spec.abs()),
            ("conv1 per frame", conv1),
            ("conv2 + dense (per block)", lambda: model._encode_features(feats.unfold(0, T, hop))),
            ("decoder dense + deconv2", lambda: model._decode_hidden(code)),
            ("whole model + overlap-add (estimate_frames)", lambda: sep._estimate_frames(mag)),
            ("masks x mixture (4 stems)", lambda: masked_mixtures(est[:, :, core].clone(), spec[:, core], groups,
                                                                  sep.mask_power, overwrite=True)),
            ("  of which the clone above", lambda: est[:, :, core].clone()),
            ("ISTFT overlap-add (4 stems)", lambda: stft.frames_to_signal(stems.transpose(-1, -2))),
            ("envelope", lambda: stft.envelope(0, sep.core_frames * cfg.hop, 10 ** 6)),
            ("floor: torch.stft", lambda: torch.stft(x, cfg.n_fft, cfg.hop, window=window,
                                                      return_complex=True)),
            ("floor: torch.istft of 4 stems", lambda: torch.istft(four, cfg.n_fft, cfg.hop, window=window)),
        ]
        results = []
        for label, fn in stages:
            t = timed(fn, repeats=args.repeats)
            results.append({"stage": label, **t})
    rows = [[r["stage"], f"{r['median_s'] * 1000:.2f}"] for r in results]
    print(f"{args.preset}, segment of {frames} frames ({sep.core_frames} core), "
          f"{torch.get_num_threads()} thread(s)")
    print_table(["stage", "ms"], rows)
    write_results(args.name, {"machine": info, "preset": args.preset, "segment_frames": frames,
                              "core_frames": sep.core_frames, "results": results})


if __name__ == "__main__":
    main()
