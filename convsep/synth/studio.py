"""One track of the varied corpus: the arranger's parts rendered with banks drawn per track
and per instrument, real or synthetic voices, production effects per instrument, per stem
and on the mix bus, and loudness balances drawn from the range real mixes use.

Everything random comes from the track's generator, so a track depends only on its seed,
its split and the installed banks and recordings (recorded in the manifest).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from convsep.constants import SAMPLE_RATE
from convsep.synth import banks as bank_lib
from convsep.synth import effects, instruments, mix, singers, voice
from convsep.synth.arrange import Part, arrange
from convsep.synth.mix import REVERB_SEND, RT60, STEM_LEVEL  # the classic corpus's ranges
from convsep.synth.music import plan_song
from convsep.synth.render import render_part

ACCOMPANIMENT = ("drums", "bass", "other")
#: Probabilities of the voice choices when ``voices="all"``.
P_MIR1K_LEAD, P_BERKLEE_BACKING, P_EXTRA_BACKING, P_DOUBLE, P_HARMONY = 0.55, 0.6, 0.25, 0.35, 0.35
#: Probability that a full-band sung phrase from sms-tools leads a track that has no MIR-1K lead.
P_SMS_LEAD = 0.12
#: Probabilities that a recorded instrument replaces a fitting GM part: (bank, part names, programs, p).
RECORDED_PARTS = (("berklee:piano", ("piano",), (0, 1), 0.3),
                  ("berklee:guitar", ("guitar", "guitar2"), (24, 25), 0.3),
                  ("sms-tools:solo", ("lead",), None, 0.3))
VOICES = ("all", "synthetic", "mir1k")
PRODUCTION = ("none", "classic", "light", "full")


def role_of(part: Part) -> str:
    """The effect role of a part (see :func:`convsep.synth.effects.insert_chain`)."""
    if part.stem == "vocals":
        return "lead" if part.name.startswith("lead") else "backing"
    if part.stem in ("drums", "bass"):
        return part.stem
    if part.name.startswith("guitar"):
        return "distorted" if part.program in (29, 30) else "guitar"
    if part.name in ("pad", "strings"):
        return "pad"
    if part.name == "brass":
        return "brass"
    if part.name == "lead":
        return "solo"
    return "keys"


def render_with(part: Part, frames: int, bank: bank_lib.Bank, fallback: bank_lib.Bank) -> tuple[np.ndarray, str]:
    """Render ``part`` on ``bank``: float64 (2, frames) and the name of the bank that played
    it (``fallback`` when ``bank`` lacks the preset or stays silent)."""
    if bank.kind == "recorded":
        audio = np.stack([instruments.render_recorded(part, frames, bank.name)] * 2)
    elif bank.kind == "hydrogen":
        from convsep.synth.drumkit import render_kit

        audio = render_kit(part, frames, bank.path).astype(np.float64)
    elif bank.drums_only:
        audio = render_part(part, frames, bank.path, preset=(0, 0)).astype(np.float64)
    else:
        preset = None
        if not bank_lib.has_preset(bank.path, part.bank, part.program):
            preset = (part.bank, 0) if bank_lib.has_preset(bank.path, part.bank, 0) else None
            if preset is None:
                bank = fallback
        audio = render_part(part, frames, bank.path, preset=preset).astype(np.float64)
    if not np.any(audio) and bank is not fallback and part.notes:
        return render_with(part, frames, fallback, fallback)
    return audio, bank.name


def note_spans(part: Part, gap: float = 2.0) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches where ``part`` plays (notes closer than ``gap``)."""
    spans: list[list[float]] = []
    for n in sorted(part.notes, key=lambda n: n.start):
        if spans and n.start - spans[-1][1] < gap:
            spans[-1][1] = max(spans[-1][1], n.start + n.seconds)
        else:
            spans.append([n.start, n.start + n.seconds])
    return [(a, b) for a, b in spans]


def place(audio: np.ndarray, position: float, gain_db: float, width: float) -> np.ndarray:
    """Level a part to 0.1 * ``gain_db`` (active RMS) and pan it: float64 (2, frames)."""
    stereo = audio if audio.ndim == 2 else np.stack([audio, audio])
    level = mix.active_rms(stereo)
    if level <= 0:
        return np.zeros_like(stereo)
    return mix.pan(audio, position, width) * (10 ** (gain_db / 20) * 0.1 / level)


class TrackMaker:
    """Makes the stems of one track; ``record`` collects what the manifest says about it."""

    def __init__(self, seed: int, seconds: float, split: str, bankset: bank_lib.BankSet, voices: str,
                 production: str):
        self.rng = np.random.default_rng(seed)
        self.seconds, self.split = seconds, split
        self.bankset, self.voices, self.production = bankset, voices, production
        self.frames = int(round(seconds * SAMPLE_RATE))
        self.record: dict = {"banks": {}, "effects": {}}

    def chain(self, role: str, band_limited: bool = False) -> effects.Chain:
        level = self.production if self.production in ("light", "full") else "none"
        return effects.insert_chain(self.rng, role, level, band_limited)

    def label(self, part: Part) -> str:
        return f"{part.stem}:{part.name}"

    def instrument(self, part: Part, bank: bank_lib.Bank) -> np.ndarray:
        """One rendered, processed, levelled and panned instrument part: (2, frames)."""
        if bank.kind == "phrases":
            mono, names = instruments.lay_phrases(self.rng, instruments.phrases()["solo"], note_spans(part), self.frames)
            audio, used = np.stack([mono, mono]), f"{bank.name}({','.join(sorted(set(names)))})"
            if not names:  # too short a stretch for a phrase: the GM solo plays instead
                bank = self.bankset.gm[0]
        if bank.kind != "phrases":
            audio, used = render_with(part, self.frames, bank, self.bankset.gm[0])
        self.record["banks"][self.label(part)] = used
        fx = self.chain(role_of(part))
        if fx.names:
            self.record["effects"][self.label(part)] = fx.names
        width = 1.0 if part.stem in ("other", "drums") else 0.4
        return place(fx(audio), part.pan, part.gain_db, width)

    def make(self) -> tuple[dict[str, np.ndarray], dict]:
        """The four mastered stems, float64 (2, frames) each, and the track's record."""
        rng = self.rng
        song = plan_song(rng, self.seconds)
        parts = arrange(song, rng, self.seconds)
        labels = [self.label(p) for name in ("vocals",) + ACCOMPANIMENT for p in parts[name]]
        assigned = bank_lib.assign(rng, self.bankset, labels)
        for name, part_names, programs, p in RECORDED_PARTS:
            bank = self.bankset.recorded_bank(name)
            for part in parts["other"] if bank is not None else []:
                if part.name in part_names and (programs is None or part.program in programs) and rng.random() < p:
                    assigned[self.label(part)] = bank
        stems = {name: sum((self.instrument(p, assigned[self.label(p)]) for p in parts[name]),
                           np.zeros((2, self.frames))) for name in ACCOMPANIMENT}
        stems["vocals"] = self.vocals(song, parts["vocals"], assigned)
        stems = self.sends(song, stems)
        stems = self.balance(stems)
        bus = effects.plan_bus(rng, self.production)
        stems = effects.apply_bus(stems, bus)
        if bus.names:
            self.record["effects"]["mix bus"] = bus.names
        loud = (-17.0, -11.0) if self.production == "full" else (-19.0, -13.0)
        stems = mix.master(stems, target_dbfs=float(rng.uniform(*loud)))
        acc, voc = loudness(sum(stems[s] for s in ACCOMPANIMENT)), loudness(stems["vocals"])
        self.record["vocals_lu_over_accompaniment"] = round(voc - acc, 2) if np.isfinite(voc - acc) else None
        self.record.update(song=song, parts=parts)
        return stems, self.record

    # Vocals ---------------------------------------------------------------------------
    def lead(self, song, lead_part: Part, bank: bank_lib.Bank) -> tuple[np.ndarray, str, list[str], int]:
        """The lead voice, mono (frames,): real singing from MIR-1K or sms-tools, else the
        arranger's formant singer or sampled voice; with its source, material and bandwidth."""
        rng, frames = self.rng, self.frames
        if self.voices == "mir1k" or self.voices == "all" and rng.random() < P_MIR1K_LEAD:
            got = singers.mir1k_lead(rng, song, frames, self.split)
            if got is not None:
                return got[0], "mir1k", [f"mir1k:{c}" for c in got[1]], singers.MIR1K_BANDWIDTH_HZ
        sung = instruments.phrases().get("sung") if self.voices == "all" else None
        if sung and rng.random() < P_SMS_LEAD:
            line, names = instruments.lay_phrases(rng, sung, singers.vocal_spans(song, frames / SAMPLE_RATE), frames)
            if names:
                return line, "sms-tools", [f"sms-tools:{n}" for n in names], singers.FULL_BANDWIDTH_HZ
        if lead_part.program < 0:
            line, source = voice.sing(lead_part, frames, song.voice_range, rng).astype(np.float64), "formant"
        else:
            audio, used = render_with(lead_part, frames, bank, self.bankset.gm[0])
            line, source = audio.mean(axis=0), f"gm:{lead_part.program}@{used}"
        return line, source, [source], singers.FULL_BANDWIDTH_HZ

    def vocals(self, song, vparts: list[Part], assigned: dict) -> np.ndarray:
        """Lead (see :meth:`lead`), backing voices (Berklee samples or a GM choir), doubles
        and harmonies: the vocal stem (2, frames)."""
        rng, frames = self.rng, self.frames
        lead_part, backing_parts = vparts[0], vparts[1:]
        lead, source, material, bandwidth = self.lead(song, lead_part, assigned[self.label(lead_part)])
        self.record["vocals_source"] = source
        band_limited = bandwidth < singers.FULL_BANDWIDTH_HZ
        layers = []  # (audio, pan, gain_db, role, band_limited)
        layers.append((lead, lead_part.pan, 0.0, "lead", band_limited))
        if self.voices != "synthetic":
            if rng.random() < P_DOUBLE:
                side = float(rng.choice([-1, 1]))
                layers.append((singers.double(rng, lead), side * float(rng.uniform(0.2, 0.6)),
                               float(rng.uniform(-7, -2)), "lead", band_limited))
                material.append("double")
            if rng.random() < P_HARMONY:
                chorus = [(s.start_bar * song.beats_per_bar * song.seconds_per_beat,
                           (s.start_bar + s.bars) * song.beats_per_bar * song.seconds_per_beat)
                          for s in song.sections if s.kind == "chorus" and s.vocals]
                if chorus:
                    line, interval = singers.harmony(rng, lead, chorus)
                    if np.any(line):
                        layers.append((line, float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-10, -4)), "backing",
                                       band_limited))
                        material.append(f"harmony {interval:+d}")
        use_berklee = self.voices == "all" and (backing_parts and rng.random() < P_BERKLEE_BACKING
                                                or not backing_parts and rng.random() < P_EXTRA_BACKING)
        got = singers.berklee_backing(rng, song, frames) if use_berklee else None
        if got is not None:
            audio, names = got
            layers.append((audio, float(rng.choice([-0.4, 0.4])), float(rng.uniform(-10, -6)), "backing", False))
            material += [f"berklee:{n}" for n in names]
        else:
            for p in backing_parts:
                audio, used = render_with(p, frames, assigned[self.label(p)], self.bankset.gm[0])
                self.record["banks"][self.label(p)] = used
                layers.append((audio, p.pan, p.gain_db, "backing", False))
                material.append(f"gm:{p.program}@{used}")
        acc = np.zeros((2, frames))
        for i, (audio, pan, gain_db, role, limited) in enumerate(layers):
            fx = self.chain(role, limited)
            if fx.names:
                self.record["effects"][f"vocals:{role}{i}"] = fx.names
            stereo = audio if audio.ndim == 2 else np.stack([audio, audio])
            acc += place(fx(stereo), pan, gain_db, 0.4)
        self.record["vocals_material"] = material
        self.record["vocals_bandwidth_hz"] = bandwidth
        return acc

    # Sends, levels -----------------------------------------------------------------------
    def sends(self, song, stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reverb (a convolution room or an algorithmic reverb, one per track) and a vocal
        delay, each return added inside its own stem."""
        if self.production == "none":
            return stems
        rng = self.rng
        lo, hi = RT60.get(song.style, (0.8, 1.6))
        rt60 = float(rng.uniform(lo, hi))
        convolution = self.production == "classic" or rng.random() < 0.5
        room = mix.room_response(rng, rt60) if convolution else None
        size, damping = float(np.clip(rt60 / 2.8, 0.2, 0.95)), float(rng.uniform(0.2, 0.7))
        out = {}
        for name, x in stems.items():
            send = float(rng.uniform(*REVERB_SEND[name]))
            if convolution:
                y = mix.reverb(x, room, send)
                self.record["effects"].setdefault(f"{name} sends", []).append(f"room rt60 {rt60:.1f} s send {send:.2f}")
            else:
                verb = effects.reverb_send(rng, size, damping, send * 0.5)
                y = x + verb(x)
                self.record["effects"].setdefault(f"{name} sends", []).append(verb.name)
            if name == "vocals" and self.production == "full" and rng.random() < 0.5:
                echo = effects.delay_send(rng, song.tempo, float(rng.uniform(0.08, 0.25)))
                y = y + echo(x)
                self.record["effects"][f"{name} sends"].append(echo.name)
            out[name] = y
        return out

    def balance(self, stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Accompaniment stems around their usual relative levels; the voice set against the
        accompaniment's loudness (ITU-R BS.1770 gated loudness, so the voice is measured
        where it sings), usually on top: -1 to +5 LU, sometimes -4 to -1 LU."""
        rng = self.rng
        out = {}
        for name in ACCOMPANIMENT:
            x, level = stems[name], mix.active_rms(stems[name])
            mean, spread = STEM_LEVEL[name]
            out[name] = x * (10 ** ((mean + rng.normal(0, spread / 2)) / 20) * 0.1 / level) if level > 0 else x
        over = float(rng.uniform(-1, 5)) if rng.random() < 0.85 else float(rng.uniform(-4, -1))
        acc, v = loudness(sum(out.values())), loudness(stems["vocals"])
        out["vocals"] = stems["vocals"] * 10 ** ((acc + over - v) / 20) if np.isfinite(acc) and np.isfinite(v) \
            else stems["vocals"]
        return out


def loudness(x: np.ndarray) -> float:
    """Integrated loudness (LUFS, BS.1770 with its gates) of ``x`` (2, frames); -inf if silent."""
    import pyloudnorm

    if x.shape[1] < SAMPLE_RATE // 2 or not np.any(x):
        return float("-inf")
    return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(x.T))


def describe(record: dict) -> dict:
    """The manifest fields of a varied track (without the song and parts)."""
    return {k: v for k, v in record.items() if k not in ("song", "parts")}


def instruments_of(parts: dict[str, list[Part]]) -> list[str]:
    return sorted({f"{p.stem}:{p.name}" + (f"({p.program})" if p.program >= 0 else "(formant)")
                   for ps in parts.values() for p in ps if p.notes})


def bank_credits(bankset: bank_lib.BankSet) -> list[dict]:
    return [{"name": b.name, "path": Path(b.path).name, "package": b.package, "license": b.license}
            for b in bankset.gm + bankset.drums + bankset.recorded]
