"""Instrument banks: the General MIDI SoundFonts and recorded drum kits installed on this
machine, found by path (Debian packages), never copied into the package.

A corpus draws from a *bank set* (``--banks``): ``all`` (every installed bank), ``fluid``
(FluidR3 or ``--soundfont`` only: the original corpus), or a comma list of bank names or
families (``fluid,timgm6mb,avl,hydrogen``). Each track picks a main bank ("its studio") and
each instrument keeps it or draws another; the drum kit is drawn from the GM kits and the
recorded kits. Banks that are not installed are named in the manifest and in a warning.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsep.errors import ConvSepError

HYDROGEN_DIR = Path(os.environ.get("CONVSEP_HYDROGEN_DRUMKITS", "/usr/share/hydrogen/data/drumkits"))


@dataclass(frozen=True)
class Bank:
    """One source of instrument sounds. ``kind`` is "soundfont" (a GM bank, or a drum-only
    SoundFont when ``drums_only``), "hydrogen" (a Hydrogen drum kit folder), "recorded" (a
    sampler of recorded notes, :mod:`convsep.synth.instruments`) or "phrases" (recorded solo
    phrases)."""

    name: str
    kind: str
    path: str
    package: str
    license: str
    drums_only: bool = False


# name, candidate paths (first existing wins), Debian package, licence
GM_SOUNDFONTS = (
    ("fluid", ("/usr/share/sounds/sf2/FluidR3_GM.sf2",), "fluid-soundfont-gm", "MIT"),
    ("musescore", ("/usr/share/sounds/sf3/MuseScore_General_Full.sf3", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
                   "/usr/share/sounds/sf3/MuseScore_General.sf3", "/usr/share/sounds/sf2/MuseScore_General.sf2"),
     "musescore-general-soundfont(-small)", "MIT"),
    ("timgm6mb", ("/usr/share/sounds/sf2/TimGM6mb.sf2",), "timgm6mb-soundfont", "GPL-2"),
    ("csound", ("/usr/share/sounds/sf2/sf_GMbank.sf2", "/usr/share/samples/sf_GMbank.sf2"), "csound-soundfont",
     "public domain"),
)
DRUM_SOUNDFONTS = (
    ("avl-black-pearl", ("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "/usr/lib/lv2/avldrums.lv2/Black_Pearl_4_LV2.sf2"),
     "avldrums.lv2-soundfont", "GPL-2+"),
    ("avl-red-zeppelin", ("/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "/usr/lib/lv2/avldrums.lv2/Red_Zeppelin_4_LV2.sf2"),
     "avldrums.lv2-soundfont", "GPL-2+"),
)
HYDROGEN_PACKAGE = "hydrogen-drumkits"
FAMILIES = {"avl": [n for n, *_ in DRUM_SOUNDFONTS], "hydrogen": ["hydrogen"], "gm": [n for n, *_ in GM_SOUNDFONTS]}
#: Recorded instruments in ../shared/data/real: Berklee piano and guitar samplers, sms-tools solo phrases.
RECORDED = ("berklee", "sms")
#: Probability that an instrument keeps the track's main bank.
KEEP_MAIN = 0.6
#: Probability that the drums come from a recorded kit (when one is installed).
RECORDED_DRUMS = 0.6


@dataclass(frozen=True)
class BankSet:
    """The banks a corpus draws from: GM banks (melodic and drums), drum-only banks, and the
    requested banks that are not installed (``missing``: "name (package)")."""

    gm: tuple[Bank, ...]
    drums: tuple[Bank, ...]
    missing: tuple[str, ...]
    recorded: tuple[Bank, ...] = ()

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.gm + self.drums + self.recorded]

    def recorded_bank(self, name: str) -> Bank | None:
        return next((b for b in self.recorded if b.name == name), None)


def _first_file(paths) -> str | None:
    return next((p for p in paths if Path(p).is_file()), None)


def hydrogen_kits() -> list[Bank]:
    """The Hydrogen kits under HYDROGEN_DIR that have a kick, a snare and a closed hi-hat."""
    from convsep.synth.drumkit import usable_kit

    if not HYDROGEN_DIR.is_dir():
        return []
    kits = []
    for d in sorted(HYDROGEN_DIR.iterdir()):
        xml = d / "drumkit.xml"
        if xml.is_file() and usable_kit(str(xml)):
            kits.append(Bank(f"hydrogen:{d.name}", "hydrogen", str(d), HYDROGEN_PACKAGE, kit_license(xml), drums_only=True))
    return kits


def kit_license(xml: Path) -> str:
    """The ``<license>`` a Hydrogen kit declares, else a pointer to the package's copyright."""
    import re

    m = re.search(r"<license>([^<]+)</license>", xml.read_text(errors="replace"))
    text = " ".join(m.group(1).split()) if m else ""
    return text or f"see the copyright file of Debian {HYDROGEN_PACKAGE}"


def select(spec: str = "all", soundfont: str | None = None) -> BankSet:
    """The installed banks named by ``spec`` (see the module docstring). ``soundfont``, when
    given, replaces FluidR3 as the "fluid" bank. Raises ConvSepError when no GM bank is left."""
    wanted = [w.strip() for w in spec.split(",") if w.strip()] if spec != "all" else ["gm", "avl", "hydrogen", *RECORDED]
    names: list[str] = []
    for w in wanted:
        names += FAMILIES.get(w, [w])
    known = {n for n, *_ in GM_SOUNDFONTS + DRUM_SOUNDFONTS} | {"hydrogen", *RECORDED}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConvSepError(f"unknown bank {unknown[0]!r}; choose all, fluid, musescore, timgm6mb, csound, avl, "
                           "avl-black-pearl, avl-red-zeppelin, hydrogen, berklee or sms (comma-separated)")
    gm, drums, missing = [], [], []
    for name, paths, package, licence in GM_SOUNDFONTS:
        if name not in names:
            continue
        if name == "fluid" and soundfont is not None:
            paths = (str(soundfont),)
        path = _first_file(paths)
        if path is None:
            missing.append(f"{name} ({package})" if not (name == "fluid" and soundfont) else f"fluid ({soundfont})")
        else:
            gm.append(Bank(name, "soundfont", path, package, licence))
    for name, paths, package, licence in DRUM_SOUNDFONTS:
        if name in names:
            path = _first_file(paths)
            if path is None:
                missing.append(f"{name} ({package})")
            else:
                drums.append(Bank(name, "soundfont", path, package, licence, drums_only=True))
    if "hydrogen" in names:
        kits = hydrogen_kits()
        drums += kits
        if not kits:
            missing.append(f"hydrogen ({HYDROGEN_PACKAGE})")
    recorded = []
    if "berklee" in names:
        from convsep.synth.instruments import recorded_instruments
        from convsep.synth.recordings import real_root

        found = recorded_instruments()
        recorded += [Bank(n, "recorded", str(Path(found[n][0][1]).parent), "../shared/data/real/berklee", "CC BY 3.0")
                     for n in sorted(found)]
        if not found:
            missing.append(f"berklee instruments ({real_root() / 'berklee' / 'instruments'})")
    if "sms" in names:
        from convsep.synth.instruments import phrases
        from convsep.synth.recordings import real_root

        if "solo" in phrases():
            recorded.append(Bank("sms-tools:solo", "phrases", str(real_root() / "sms-tools"), "../shared/data/real/sms-tools",
                                 "CC BY 4.0"))
        else:
            missing.append(f"sms-tools phrases ({real_root() / 'sms-tools'})")
    if not gm:
        raise ConvSepError("no General MIDI SoundFont installed for --banks " + spec
                           + f" (missing: {', '.join(missing)}; run scripts/setup.sh as root or pass --soundfont FILE.sf2)")
    return BankSet(tuple(gm), tuple(drums), tuple(missing), tuple(recorded))


def assign(rng: np.random.Generator, banks: BankSet, labels: list[str]) -> dict[str, Bank]:
    """A bank for each instrument label (``"drums:drums"``, ``"other:piano"``, ...): the
    track's main GM bank with probability KEEP_MAIN, else any GM bank; the drums come from a
    recorded kit with probability RECORDED_DRUMS when one is installed. (Recorded pianos,
    guitars and solos replace some of these in :mod:`convsep.synth.studio`.)"""
    main = banks.gm[int(rng.integers(len(banks.gm)))]
    out = {}
    for label in labels:
        if label.startswith("drums") and banks.drums and rng.random() < RECORDED_DRUMS:
            out[label] = banks.drums[int(rng.integers(len(banks.drums)))]
        elif rng.random() < KEEP_MAIN:
            out[label] = main
        else:
            out[label] = banks.gm[int(rng.integers(len(banks.gm)))]
    return out


@functools.lru_cache(maxsize=None)
def has_preset(path: str, bank: int, program: int) -> bool:
    """Whether the SoundFont at ``path`` defines ``bank``/``program``."""
    from convsep.synth.render import _synth

    synth, sfid = _synth(path)
    return synth.sfpreset_name(sfid, bank, program) is not None
