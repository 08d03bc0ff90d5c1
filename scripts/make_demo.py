"""Cuts the bundled demo from a test-split track of the synthetic corpus:
convsep/pretrained/demo/{vocals,drums,bass,other}.flac (16-bit, the mixture is their sum)
and demo.json. Picks the excerpt where the quietest source is loudest.

    python scripts/make_demo.py CORPUS [--track NAME] [--seconds 15]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = ("vocals", "drums", "bass", "other")
OUT = Path(__file__).resolve().parents[1] / "convsep" / "pretrained" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("--track", default="Convsep Synth - Test 002")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    folder = Path(args.corpus) / "test" / args.track
    stems = {s: sf.read(str(folder / f"{s}.wav"), dtype="int16", always_2d=True)[0] for s in SOURCES}
    rate = sf.info(str(folder / "vocals.wav")).samplerate
    length = int(args.seconds * rate)
    hop = rate // 2
    starts = range(0, len(stems["vocals"]) - length, hop)
    loudness = [min(float(np.sqrt(np.mean(stems[s][a:a + length].astype(np.float64) ** 2))) for s in SOURCES)
                for a in starts]
    start = list(starts)[int(np.argmax(loudness))]
    OUT.mkdir(parents=True, exist_ok=True)
    for s in SOURCES:
        sf.write(str(OUT / f"{s}.flac"), stems[s][start:start + length], rate, subtype="PCM_16")
    meta = {"track": args.track, "subset": "test", "start_seconds": start / rate, "seconds": args.seconds,
            "source": "convsep synth --tracks-train 100 --tracks-test 50 --seconds 60 --seed 0 (test split)",
            "note": "the mixture is the sum of the four stems"}
    (OUT / "demo.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"demo: {args.track} from {start / rate:.1f} s, {args.seconds:g} s -> {OUT}")


if __name__ == "__main__":
    main()
