"""`convsep mix`: the stems of a track folder summed at chosen gains, the same function as the
web app's mix export."""
import numpy as np
import soundfile as sf

from convsep.cli import main

RATE = 44100


def test_mix_command(tmp_path, capsys):
    folder = tmp_path / "separated" / "song"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    stems = {name: (0.1 * rng.standard_normal((RATE, 2))) for name in ("vocals", "drums", "bass", "other")}
    for name, audio in stems.items():
        sf.write(str(folder / f"{name}.wav"), audio, RATE, subtype="PCM_16")
    out = tmp_path / "karaoke.flac"
    assert main(["mix", str(folder), "--gain", "vocals=0", "--gain", "bass=0.5", "-o", str(out)]) == 0
    mixed = sf.read(str(out), dtype="int16")[0]
    read = {n: sf.read(str(folder / f"{n}.wav"), dtype="int16")[0].astype(float) for n in stems}
    assert np.abs(mixed - (read["drums"] + 0.5 * read["bass"] + read["other"])).max() <= 0.5
    assert main(["mix", str(folder), "-o", str(out)]) == 2 and "exists" in capsys.readouterr().err
    assert main(["mix", str(folder), "--gain", "kazoo=1", "-o", str(tmp_path / "x.wav")]) == 2
    assert "unknown stem 'kazoo'" in capsys.readouterr().err
    assert main(["mix", str(folder), "--gain", "vocals", "-o", str(tmp_path / "x.wav")]) == 2
    assert not (tmp_path / "x.wav").exists()
