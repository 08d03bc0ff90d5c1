"""Statistics of a synthetic corpus for docs/data.md: per-stem level, silence, spectral
centroid, oracle IRM1 SDR on the test split, and the generation speed per core.

    python scripts/synth_stats.py ROOT [--irm1-tracks N] [--bench-tracks N] [--json OUT.json]

Levels are RMS over the whole track in dBFS (full scale = 1.0); a frame (2048 samples, hop
2048) is silent when its RMS is below -60 dBFS; the spectral centroid is the magnitude-weighted
mean frequency of the non-silent frames (mono downmix). IRM1 is the magnitude ratio mask with
a Hann STFT of 4096/1024 (the sigsep oracle settings), scored with convsep's BSSEval v4
(1 s windows, SiSEC aggregation: median over windows, then median over tracks).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = ("vocals", "drums", "bass", "other")
FRAME = 2048


def stem_stats(x: np.ndarray, rate: int) -> tuple[float, float, float]:
    """(RMS dBFS, fraction of silent frames, spectral centroid Hz) of ``x`` (samples, 2)."""
    rms = float(np.sqrt(np.mean(x**2)))
    mono = x.mean(axis=1)
    n = len(mono) // FRAME
    frames = mono[: n * FRAME].reshape(n, FRAME)
    frame_rms = np.sqrt((x[: n * FRAME].reshape(n, FRAME, 2) ** 2).mean(axis=(1, 2)))
    loud = frame_rms >= 10 ** (-60 / 20)
    spec = np.abs(np.fft.rfft(frames[loud] * np.hanning(FRAME), axis=1))
    freqs = np.fft.rfftfreq(FRAME, 1 / rate)
    centroid = float((spec @ freqs).sum() / max(spec.sum(), 1e-12)) if loud.any() else float("nan")
    return 20 * np.log10(max(rms, 1e-12)), float(1 - loud.mean()), centroid


def irm1_sdr(folder: Path) -> dict[str, float]:
    """Median-over-windows SDR of the IRM1 oracle for each source of one track."""
    import torch

    from convsep.evaluate.bsseval import bss_eval_v4
    from convsep.evaluate.oracles import oracle_estimates

    refs = np.stack([sf.read(folder / f"{s}.wav", dtype="float32")[0] for s in SOURCES])  # (S, N, 2)
    est = oracle_estimates(torch.from_numpy(refs).permute(0, 2, 1), "irm1").permute(0, 2, 1)
    sdr = bss_eval_v4(torch.from_numpy(refs).double(), est.double())["SDR"].numpy()
    return {s: float(np.nanmedian(sdr[i])) for i, s in enumerate(SOURCES)}


def bench(tracks: int, seconds: float, manifest: dict) -> float:
    """Seconds of audio generated per CPU second (one process, tracks as long as the corpus's),
    written to a temporary folder with the corpus's recipe (varied: every installed bank)."""
    import tempfile

    from convsep.synth.corpus import make_track, plan_tracks
    from convsep.synth.render import DEFAULT_SOUNDFONT

    varied = {}
    if "voices" in manifest:
        from convsep.synth import banks

        varied = {"bankset": banks.select("all"), "voices": manifest["voices"], "production": manifest["production"]}
    with tempfile.TemporaryDirectory() as tmp:
        specs = plan_tracks(tracks, 1, 12345, seconds, DEFAULT_SOUNDFONT, "wav", Path(tmp), **varied)[:tracks]
        make_track(specs[0])  # warm up: SoundFont loading
        start = time.process_time()
        for s in specs[1:]:
            make_track(s)
        return (tracks - 1) * seconds / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--irm1-tracks", type=int, default=0, help="test tracks scored with IRM1 (0: none)")
    parser.add_argument("--bench-tracks", type=int, default=0, help="tracks for the speed figure (0: skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    manifest = json.loads((args.root / "manifest.json").read_text())
    report: dict = {"tracks": len(manifest["tracks"]), "valid": len(manifest["valid"])}
    stats = {s: [] for s in ("mixture",) + SOURCES}
    for row in manifest["tracks"]:
        folder = args.root / row["subset"] / row["track"]
        for s in stats:
            x, rate = sf.read(folder / f"{s}.wav", dtype="float32")
            stats[s].append(stem_stats(x, rate))
    report["stems"] = {
        s: {"rms_dbfs_mean": float(np.mean([v[0] for v in vals])), "rms_dbfs_std": float(np.std([v[0] for v in vals])),
            "silent_fraction_mean": float(np.mean([v[1] for v in vals])),
            "centroid_hz_mean": float(np.nanmean([v[2] for v in vals]))}
        for s, vals in stats.items()
    }
    styles: dict[str, int] = {}
    for row in manifest["tracks"]:
        styles[row["style"]] = styles.get(row["style"], 0) + 1
    report["styles"] = styles
    report["meters"] = {m: sum(r["meter"] == m for r in manifest["tracks"]) for m in {r["meter"] for r in manifest["tracks"]}}
    if "voices" in manifest:  # the varied corpus: what it drew
        rows = manifest["tracks"]
        count = lambda keys: {k: keys.count(k) for k in sorted(set(keys))}  # noqa: E731
        report["vocals_source"] = count([r["vocals_source"].split("@")[0].split(":")[0] for r in rows])
        report["vocals_bandwidth_hz"] = count([r["vocals_bandwidth_hz"] for r in rows])
        report["vocal_layers"] = count([m.split(":")[0].split(" ")[0] for r in rows for m in r["vocals_material"]
                                        if not m.startswith("mir1k:")] + ["mir1k" for r in rows
                                        if any(m.startswith("mir1k:") for m in r["vocals_material"])])
        report["drum_banks"] = count([r["banks"]["drums:drums"].split(":")[0] for r in rows])
        report["instrument_banks"] = count([b.split("(")[0] for r in rows for k, b in r["banks"].items()
                                            if not k.startswith("drums")])
        lu = [r["vocals_lu_over_accompaniment"] for r in rows if r["vocals_lu_over_accompaniment"] is not None]
        report["vocals_lu_over_accompaniment"] = {"mean": float(np.mean(lu)), "min": min(lu), "max": max(lu)}
    report["tempo_range"] = [min(r["tempo"] for r in manifest["tracks"]), max(r["tempo"] for r in manifest["tracks"])]
    if args.irm1_tracks:
        test = [r for r in manifest["tracks"] if r["subset"] == "test"][: args.irm1_tracks]
        start = time.perf_counter()
        per_track = [irm1_sdr(args.root / "test" / r["track"]) for r in test]
        report["irm1"] = {"tracks": len(test), "seconds": round(time.perf_counter() - start, 1),
                          "median_sdr": {s: float(np.median([t[s] for t in per_track])) for s in SOURCES}}
    if args.bench_tracks:
        report["x_real_time_per_core"] = bench(args.bench_tracks, float(manifest["seconds"]), manifest)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
