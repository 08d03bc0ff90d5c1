"""Separation speed of convsep against its peers and the STFT floor, on the same input.

For each track length (default 30 s and 4 min, stereo, 44.1 kHz) the script times, in one
run and on one random input:

- the floor of any mask model at convsep's STFT: torch STFT + 4 ISTFT (n_fft 1024, hop 256);
- convsep, each preset with random weights (``Separator.separate_tensor``: streaming in
  segments, blocks, model, overlap-add, soft masks, ISTFT of the 4 stems), and each model of
  ``--models`` (bundled names or files: the default model's widths and frame length), each
  against the floor at its own n_fft (timed first, for every n_fft in use besides 1024);
- Open-Unmix (its model classes, random weights, 4 targets) with 0 and 1 Wiener iterations;
- HTDemucs (class defaults, random weights) through ``demucs.apply.apply_model``.

and prints seconds, real-time factor and the ratio to the floor. Peers that are not
installed are skipped with a note (install them with ``benchmarks/setup_peers.sh``).
HTDemucs is slow on a CPU (minutes per 4-min track); by default it runs on inputs of at most
``--htdemucs-max-seconds`` and its time on longer ones is extrapolated linearly (it works in
fixed segments) and marked as such. Everything runs in one process with the allocator as
the ``convsep`` command sets it (``convsep.runtime.allocator``: large freed blocks kept), peers
included; ``--default-allocator`` leaves glibc's as it is.

    python benchmarks/separation_speed.py [--seconds 30 240] [--repeats 3] [--device cpu]
        [--models default synthetic] [--default-allocator]
"""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import machine, print_table, synchronizer, timed, use_torchaudio_stub, write_results  # noqa: E402

from convsep.models import PRESETS, ConvSep  # noqa: E402
from convsep.models.modelfile import load_model  # noqa: E402
from convsep.runtime.allocator import keep_freed_memory  # noqa: E402
from convsep.separation.separator import Separator  # noqa: E402

RATE = 44100
N_FFT, HOP = 1024, 256


def make_input(seconds: float, seed: int = 0) -> torch.Tensor:
    """(2, samples) noise at a music-like level; the cost does not depend on the content."""
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, int(seconds * RATE), generator=g)


def floor_fn(x: torch.Tensor, n_fft: int = N_FFT) -> Callable[[], torch.Tensor]:
    """torch STFT of the mixture + ISTFT of 4 stems of it: (C, N) -> (4, C, N)."""
    window = torch.hann_window(n_fft, device=x.device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            spec = torch.stft(x, n_fft, HOP, window=window, return_complex=True)   # (C, bins, F)
            stems = spec.unsqueeze(0).expand(4, *spec.shape).reshape(-1, *spec.shape[1:])
            out = torch.istft(stems, n_fft, HOP, window=window, length=x.shape[-1])
            return out.reshape(4, *x.shape)
    return run


def model_fn(model: ConvSep, x: torch.Tensor, device: str) -> Callable[[], torch.Tensor]:
    separator = Separator(model, device=device)
    mix = x if model.config.channels == 2 else x.mean(0, keepdim=True)
    return lambda: separator.separate_tensor(mix)


def convsep_fn(name: str, x: torch.Tensor, device: str) -> Callable[[], torch.Tensor]:
    """A preset with random weights (the cost does not depend on them)."""
    torch.manual_seed(0)
    return model_fn(ConvSep(PRESETS[name]), x, device)


def openunmix_fn(x: torch.Tensor, niter: int, device: str) -> Callable[[], torch.Tensor]:
    from openunmix.model import OpenUnmix
    from openunmix.model import Separator as UmxSeparator
    from openunmix.utils import bandwidth_to_max_bin

    torch.manual_seed(0)
    n_fft, hop = 4096, 1024                 # umxhq / umxl STFT
    max_bin = int(bandwidth_to_max_bin(RATE, n_fft, 16000))
    targets = {t: OpenUnmix(nb_bins=n_fft // 2 + 1, nb_channels=2, hidden_size=512, max_bin=max_bin)
               for t in ("vocals", "drums", "bass", "other")}
    model = UmxSeparator(targets, niter=niter, residual=False, n_fft=n_fft, n_hop=hop,
                         nb_channels=2, sample_rate=RATE, wiener_win_len=300).to(device).eval()
    mix = x[None].to(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(mix)
    return run


def htdemucs_fn(x: torch.Tensor, device: str) -> Callable[[], torch.Tensor]:
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).to(device).eval()
    mix = x[None].to(device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return apply_model(model, mix, shifts=1, split=True, overlap=0.25, progress=False,
                               device=device)
    return run


def peer_missing(module: str) -> str | None:
    use_torchaudio_stub()
    try:
        __import__(module)
    except ImportError as exc:
        return f"skipped: {module} not importable ({exc}); run benchmarks/setup_peers.sh"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 240.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--models", nargs="*", default=[],
                        help="model files or bundled names (default, synthetic, realtime) timed beside the presets")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--htdemucs-max-seconds", type=float, default=30.0,
                        help="longer inputs get an extrapolated HTDemucs time (default 30)")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it is (the convsep command keeps large freed blocks)")
    parser.add_argument("--name", default="separation_speed", help="results/NAME.json")
    args = parser.parse_args()
    info = machine(args.device)                   # date and load average at the start
    info["freed_blocks_kept"] = not args.default_allocator and keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
        info["torch_threads"] = args.threads
    sync = synchronizer(args.device)
    notes: list[str] = []
    umx_missing = None if not args.no_peers else "skipped (--no-peers)"
    umx_missing = umx_missing or peer_missing("openunmix.model")
    demucs_missing = None if not args.no_peers else "skipped (--no-peers)"
    demucs_missing = demucs_missing or peer_missing("demucs.apply")
    for note in dict.fromkeys(n for n in (umx_missing, demucs_missing) if n):
        print(note)
        notes.append(note)

    models = {name: load_model(name)[0] for name in args.models}
    frame_lengths = sorted(({PRESETS[name].n_fft for name in args.presets}
                            | {m.config.n_fft for m in models.values()}) - {N_FFT})
    results: list[dict] = []
    for seconds in args.seconds:
        x = make_input(seconds).to(args.device)
        # (label, builder, n_fft of the floor it is compared with)
        cases: list[tuple[str, Callable[[], Callable[[], torch.Tensor]], int]] = [
            (f"floor: torch STFT + 4 ISTFT ({N_FFT}/{HOP})", lambda: floor_fn(x), N_FFT)]
        cases += [(f"floor: torch STFT + 4 ISTFT ({n}/{HOP})", lambda n=n: floor_fn(x, n), n) for n in frame_lengths]
        cases += [(f"convsep {name}", lambda name=name: convsep_fn(name, x, args.device), PRESETS[name].n_fft)
                  for name in args.presets]
        cases += [(f"convsep model {name} (n_fft {m.config.n_fft})", lambda m=m: model_fn(m, x, args.device),
                   m.config.n_fft) for name, m in models.items()]
        if not umx_missing:
            cases += [(f"Open-Unmix, {n} Wiener it.", lambda n=n: openunmix_fn(x, n, args.device), N_FFT)
                      for n in (0, 1)]
        if not demucs_missing:
            cases.append(("HTDemucs", lambda: htdemucs_fn(x, args.device), N_FFT))
        floors: dict[int, float] = {}
        for label, build, n_fft in cases:
            extrapolated = label == "HTDemucs" and seconds > args.htdemucs_max_seconds
            if extrapolated:
                short = [r for r in results if r["what"] == label and not r.get("extrapolated")]
                if not short:
                    continue
                base = short[-1]
                median = base["median_s"] * seconds / base["seconds"]
                entry = {"what": label, "seconds": seconds, "median_s": median, "extrapolated": True}
            else:
                fn = build()
                # the slow peers run once (after a warm-up on short inputs only)
                slow = label == "HTDemucs" or (label.startswith("Open-Unmix") and seconds > 60)
                repeats = 1 if slow else args.repeats
                entry = {"what": label, "seconds": seconds,
                         **timed(fn, repeats=repeats, warmup=0 if slow and seconds > 60 else 1, sync=sync)}
                del fn
                gc.collect()
            floors.setdefault(n_fft, entry["median_s"])            # each floor runs before its models
            entry["rtf"] = entry["median_s"] / seconds
            entry["floor_n_fft"] = n_fft
            entry["ratio_to_floor"] = entry["median_s"] / floors[n_fft]
            results.append(entry)
            mark = " (extrapolated)" if entry.get("extrapolated") else ""
            print(f"{seconds:>6.0f} s  {label:<40} {entry['median_s']:8.3f} s  "
                  f"x{entry['ratio_to_floor']:.2f} of floor at {n_fft}{mark}", flush=True)

    print()
    rows = [[f"{r['seconds']:.0f}", r["what"], f"{r['median_s']:.3f}" + ("*" if r.get("extrapolated") else ""),
             f"{r['rtf']:.4f}", f"{r['ratio_to_floor']:.2f} (at {r['floor_n_fft']})"] for r in results]
    print_table(["track s", "what", "seconds", "real-time factor", "x floor (its n_fft)"], rows)
    if any(r.get("extrapolated") for r in results):
        notes.append(f"* HTDemucs extrapolated linearly from its {args.htdemucs_max_seconds:.0f} s run")
        print(notes[-1])
    write_results(args.name, {"machine": info, "repeats": args.repeats,
                              "notes": notes, "results": results})


if __name__ == "__main__":
    main()
