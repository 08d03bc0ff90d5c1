"""The varied corpus: banks drawn per track, real voices split by singer, production effects
that change the sound while every stem stays exactly what the mixture holds."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.synth import banks, effects, make_corpus, singers
from convsep.synth.arrange import Part, TimedNote
from convsep.synth.render import DEFAULT_SOUNDFONT

pytestmark = pytest.mark.skipif(not Path(DEFAULT_SOUNDFONT).is_file(), reason="no GM SoundFont installed")
FAST_BANKS = "fluid,timgm6mb,csound,avl,hydrogen,berklee,sms"  # MuseScore General takes seconds to decode
SMALL = {"tracks_train": 4, "tracks_test": 2, "seconds": 8.0, "banks": FAST_BANKS}
SOURCES = ("vocals", "drums", "bass", "other")
needs_mir1k = pytest.mark.skipif(not singers.mir1k_songs("train"), reason="MIR-1K not available")


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("varied") / "corpus"
    make_corpus(out, seed=11, **SMALL)
    return out, json.loads((out / "manifest.json").read_text())


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_stems_sum_exactly_to_the_mixture(varied) -> None:
    root, manifest = varied
    for r in manifest["tracks"]:
        folder = root / r["subset"] / r["track"]
        mix = sf.read(folder / "mixture.wav", dtype="int16")[0].astype(np.int32)
        total = sum(sf.read(folder / f"{s}.wav", dtype="int16")[0].astype(np.int32) for s in SOURCES)
        assert np.array_equal(total, mix)
        assert np.abs(mix).max() < 32767


def test_same_seed_same_bytes(varied, tmp_path: Path) -> None:
    """(``--jobs 2`` against ``--jobs 1`` is tested in tests/synth/test_corpus.py on the default corpus.)"""
    root, _ = varied
    make_corpus(tmp_path / "again", seed=11, **{**SMALL, "tracks_train": 1})  # a track's seed: (seed, subset, index)
    again, first = digest(tmp_path / "again"), digest(root)
    test_files = [k for k in first if k.startswith("test/")]
    assert len(test_files) == 10 and all(again[k] == first[k] for k in test_files)
    voice = np.sin(np.arange(44100 * 2) / 20.0) * (np.arange(44100 * 2) % 20000 < 15000)
    assert np.array_equal(singers.harmony(np.random.default_rng(1), voice, [(0.0, 2.0)])[0],
                          singers.harmony(np.random.default_rng(1), voice, [(0.0, 2.0)])[0])


def test_manifest_records_material_bandwidth_banks_and_effects(varied) -> None:
    _, manifest = varied
    assert manifest["voices"] == "all" and manifest["production"] == "full"
    assert {b["name"] for b in manifest["banks"]} >= {"fluid"}
    for r in manifest["tracks"]:
        assert r["vocals_bandwidth_hz"] == (8000 if r["vocals_source"] == "mir1k" else 22050)
        assert r["vocals_material"]
        assert r["banks"]["drums:drums"] and r["banks"]["bass:bass"]
        assert any(k.endswith("sends") for k in r["effects"])
        assert r["vocals_lu_over_accompaniment"] is None or -8 < r["vocals_lu_over_accompaniment"] < 9


def test_banks_are_drawn_per_track_and_instrument(varied) -> None:
    _, manifest = varied
    if len(banks.select(FAST_BANKS).names) < 3:
        pytest.skip("fewer than three banks installed")
    used = [set(r["banks"].values()) for r in manifest["tracks"]]
    assert len(set().union(*used)) >= 3
    rng = np.random.default_rng(0)
    bankset = banks.select(FAST_BANKS)
    if len(bankset.gm) > 1:
        labels = [f"other:{i}" for i in range(40)] + ["drums:drums"]
        assert len({b.name for b in banks.assign(rng, bankset, labels).values()}) > 1
        mains = {banks.assign(rng, bankset, ["bass:bass"])["bass:bass"].name for _ in range(40)}
        assert len(mains) > 1


def test_missing_banks_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(banks, "HYDROGEN_DIR", tmp_path / "no-kits")
    selected = banks.select("fluid,hydrogen")
    assert selected.names == ["fluid"] and any("hydrogen-drumkits" in m for m in selected.missing)
    lines: list[str] = []
    manifest = make_corpus(tmp_path / "out", tracks_train=1, tracks_test=1, seconds=1.0, banks="fluid,hydrogen",
                           voices="synthetic", warn=lines.append)
    assert len(lines) == 1 and "hydrogen-drumkits" in lines[0]
    assert any("hydrogen-drumkits" in m for m in manifest["banks_missing"])
    with pytest.raises(ConvSepError, match="unknown bank"):
        banks.select("fluid,nonsense")


def test_effects_change_the_sound_and_none_leaves_it() -> None:
    t = np.arange(44100) / 44100
    x = np.stack([np.sin(2 * np.pi * 220 * t) * (t % 0.25 < 0.1), np.sin(2 * np.pi * 330 * t)]) * 0.3
    for role in ("lead", "backing", "drums", "bass", "guitar", "distorted", "keys", "pad", "brass", "solo"):
        chain = effects.insert_chain(np.random.default_rng(1), role, "full")
        y = chain(x)
        assert chain.names and y.shape == x.shape and np.isfinite(y).all()
        assert np.sum((y - x) ** 2) > 1e-3 * np.sum(x**2), role
        assert effects.insert_chain(np.random.default_rng(1), role, "none")(x) is x
    rng = np.random.default_rng(2)
    assert np.any(effects.reverb_send(rng, 0.6, 0.4, 0.3)(x)[:, 22050:])
    assert np.any(effects.delay_send(rng, 120.0, 0.2)(x))


def test_mix_bus_keeps_stems_summing_to_the_processed_mix() -> None:
    rng = np.random.default_rng(3)
    stems = {s: rng.standard_normal((2, 44100)) * 0.05 * (1 + np.sin(np.arange(44100) / 3000)) for s in SOURCES}
    for seed in range(5):
        bus = effects.plan_bus(np.random.default_rng(seed), "full")
        processed = effects.apply_bus(stems, bus)
        whole = effects.apply_bus({"mix": sum(stems.values())}, bus)["mix"]
        assert np.abs(sum(processed.values()) - whole).max() < 1e-4  # float32 filters: -70 dB
    gain = effects.compressor_gain(sum(stems.values()), -40.0, 4.0, 10.0, 100.0)
    assert gain.shape == (44100,) and gain.max() <= 1.0 and gain.min() < 0.5


@needs_mir1k
def test_held_out_singers_never_in_train_and_bandwidth_is_8k(tmp_path: Path) -> None:
    from convsep.data.mir1k import VALID_SINGERS, singer_of

    manifest = make_corpus(tmp_path / "mir", tracks_train=2, tracks_test=1, seconds=8.0, seed=5,
                           banks="fluid", voices="mir1k", production="light")
    assert not set(manifest["mir1k_singers"]["train and valid splits"]) & set(VALID_SINGERS)
    for r in manifest["tracks"]:
        clips = [m.split(":", 1)[1] for m in r["vocals_material"] if m.startswith("mir1k:")]
        assert clips and r["vocals_bandwidth_hz"] == 8000 and r["vocals_source"] == "mir1k"
        held_out = {singer_of(c) in VALID_SINGERS for c in clips}
        assert held_out == ({True} if r["split"] == "test" else {False}), r["track"]


def test_hydrogen_kit_plays_a_groove() -> None:
    kits = banks.hydrogen_kits()
    if not kits:
        pytest.skip("hydrogen-drumkits not installed")
    from convsep.synth.drumkit import render_kit

    part = Part("drums", "drums", 0, 128, notes=[TimedNote(0.1 * i, 0.1, key, 100) for i, key in
                                                   enumerate([36, 42, 38, 46, 44, 36, 49, 51, 45])])
    audio = render_kit(part, 44100, kits[0].path)
    assert audio.shape == (2, 44100) and np.abs(audio[:, :4410]).max() > 0.01
    assert np.isfinite(audio).all()


def test_recorded_piano_guitar_and_phrases() -> None:
    from convsep.synth import instruments as sampler

    instruments = sampler.recorded_instruments()
    if not instruments:
        pytest.skip("Berklee recordings not available")
    part = Part("other", "piano", 0, notes=[TimedNote(0.25 * i, 0.4, p, 90) for i, p in enumerate([36, 60, 67, 72, 84])])
    for name in instruments:
        audio = sampler.render_recorded(part, 44100 * 2, name)
        assert audio.shape == (88200,) and np.isfinite(audio).all()
        starts = [int(0.25 * i * 44100) for i in range(5)]
        assert all(np.abs(audio[s:s + 2205]).max() > 0.01 for s in starts), name
    solo = sampler.phrases().get("solo")
    if solo:
        line, names = sampler.lay_phrases(np.random.default_rng(0), solo, [(0.5, 6.0)], 44100 * 7)
        assert names and np.any(line[22050:]) and not np.any(line[: 22050]) and not np.any(line[int(6.01 * 44100):])


def test_classic_recipe_is_the_original_corpus(tmp_path: Path) -> None:
    manifest = make_corpus(tmp_path / "classic", tracks_train=1, tracks_test=1, seconds=1.0, banks="fluid",
                           voices="synthetic", production="classic")
    assert manifest["soundfont"] == "FluidR3_GM.sf2"
    assert "voices" not in manifest and "vocals_source" not in manifest["tracks"][0]


def test_cli_flags(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert main(["synth", str(out), "--preset", "tiny", "--seconds", "1", "--banks", "fluid,timgm6mb",
                 "--voices", "synthetic", "--production", "light", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["name"] for b in manifest["banks"]] == ["fluid", "timgm6mb"] or "timgm6mb" not in str(manifest["banks"])
    assert manifest["production"] == "light"
    assert main(["synth", str(tmp_path / "bad"), "--preset", "tiny", "--banks", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown bank" in err and len(err.strip().splitlines()) == 1
