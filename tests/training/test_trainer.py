"""`convsep train`: learning, exact resume after SIGKILL, 2-process DDP, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from convsep.cli import main
from convsep.errors import ConvSepError
from convsep.models.modelfile import load_model
from convsep.training.config import TrainConfig
from convsep.training.trainer import train
from tests.conftest import put_nan


def _assert_refused(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize("overrides,pattern", [
    ('{"evil": 1}', "unknown model config field(s) evil"),
    ('{"conv1_filters": "64"}', "conv1_filters must be an integer"),
    ('{"bottleneck": 1e9}', "bottleneck must be an integer"),
    ('{"bottleneck": 1000000000}', "bottleneck must be in"),
    ('{"sources": ["../x", "y"]}', "simple identifiers"),
    ('{"tied": 1}', "tied must be true or false"),
    ('[1, 2]', "must be a JSON object"),
    ('{not json', "not JSON"),
])
def test_train_model_config_is_checked_before_training(tmp_path, capsys, overrides, pattern):
    code = main(["train", str(tmp_path / "no-dataset"), "-o", str(tmp_path / "run"),
                 "--model-config", overrides, "--no-progress"])
    _assert_refused(code, capsys.readouterr().err, pattern)
    assert not (tmp_path / "run").exists()


SMALL_REAL = {"conv1_filters": 12, "conv2_filters": 6, "bottleneck": 16}


def test_training_with_real_voices_selects_on_held_out_singers(fake_mir1k, tmp_path, make_hq_dataset):
    root = tmp_path / "corpus"
    make_hq_dataset(root, {("train", f"Song {i}"): 2.0 for i in range(3)})
    manifest = [{"track": f"Song {i}", "subset": "train", "split": "valid" if i == 2 else "train",
                 "vocals_bandwidth_hz": 8000 if i == 0 else 22050} for i in range(3)]
    (root / "manifest.json").write_text(json.dumps({"tracks": manifest}))
    cfg = TrainConfig(root=str(root), outdir=str(tmp_path / "run"), cache=str(tmp_path / "cache"),
                      model_overrides=SMALL_REAL, batch_size=4, blocks_per_excerpt=1, steps_per_epoch=3, epochs=2,
                      valid_seconds=2.0, tensorboard=False, seed=0, mir1k=str(fake_mir1k), real_valid_clips=2,
                      real_speed=1.2, real_eq_db=6.0, real_formant=1.1)
    result = train(cfg, progress=False)
    last = result["history"][-1]
    assert {"real_vocals", "real_accompaniment", "vocals"} <= set(last["valid_sdr"])
    assert last["valid_sdr_mean"] == pytest.approx(
        (last["valid_sdr"]["real_vocals"] + last["valid_sdr"]["real_accompaniment"]) / 2)
    assert (Path(cfg.outdir) / "best.pt").exists()
    from convsep.data.cache import open_cache
    bands = [t.vocals_bandwidth_hz for t in open_cache(tmp_path / "cache").tracks]
    assert bands.count(8000.0) == 1 and bands.count(None) == 2


SMALL = {"conv1_filters": 16, "conv2_filters": 8, "bottleneck": 32}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, make_hq_dataset):
    """4 training tracks and 1 validation track of 3 s (manifest split), as the synthetic corpus."""
    root = tmp_path_factory.mktemp("corpus")
    tracks = {("train", f"Song {i}"): 3.0 for i in range(5)}
    make_hq_dataset(root, tracks)
    manifest = [{"track": f"Song {i}", "subset": "train", "split": "valid" if i == 4 else "train"} for i in range(5)]
    (root / "manifest.json").write_text(json.dumps({"tracks": manifest}))
    return root


def config(root, outdir, **kw) -> TrainConfig:
    base = dict(root=str(root), outdir=str(outdir), cache=str(Path(outdir).parent / "cache"),
                model_overrides=SMALL, batch_size=4, blocks_per_excerpt=1, steps_per_epoch=8, epochs=2,
                valid_seconds=3.0, tensorboard=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_validation_loss_and_raises_sdr(corpus, tmp_path):
    result = train(config(corpus, tmp_path / "run", epochs=3, steps_per_epoch=25, lr=3e-3), progress=False)
    history = result["history"]
    untrained, last = history[0], history[-1]
    assert untrained["epoch"] == 0 and last["epoch"] == 3
    assert last["valid_loss"] < 0.5 * untrained["valid_loss"]
    assert last["valid_sdr_mean"] > untrained["valid_sdr_mean"] + 3.0, (untrained, last)
    model, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["steps"] == result["best"]["epoch"] * 25 + 25 and meta["validation_global_sdr"]
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["epoch"] == 3


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_sigkill_then_resume_reaches_the_same_weights(corpus, tmp_path):
    settings = dict(epochs=4, steps_per_epoch=6, checkpoint_every=2)
    train(config(corpus, tmp_path / "straight", **settings), progress=False)
    outdir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "convsep", "train", str(corpus), "-o", str(outdir), "--cache", str(tmp_path / "cache"),
           "--model-config", json.dumps(SMALL), "--batch-size", "4", "--blocks-per-excerpt", "1",
           "--steps-per-epoch", "6", "--epochs", "4", "--checkpoint-every", "2", "--valid-seconds", "3",
           "--seed", "3", "--no-tensorboard", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        history = outdir / "history.json"
        if history.exists() and len(json.loads(history.read_text() or "[]")) >= 3:  # untrained + 2 epochs
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = torch.load(outdir / "last.ckpt", weights_only=True)["step"]
    assert 0 < stopped_at < 24
    result = train(config(corpus, outdir, **settings), resume=True, progress=False)
    assert result["step"] == 24
    straight, resumed = _weights(tmp_path / "straight" / "last.ckpt"), _weights(outdir / "last.ckpt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_two_process_gloo_ddp_ranks_agree(corpus, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "convsep", "train", str(corpus), "-o", str(tmp_path / "ddp"), "--cache", str(tmp_path / "cache"),
           "--model-config", json.dumps(SMALL), "--batch-size", "2", "--blocks-per-excerpt", "1",
           "--steps-per-epoch", "3", "--epochs", "1", "--valid-seconds", "3", "--no-tensorboard", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 2 processes ended with identical weights" in proc.stdout
    state = torch.load(tmp_path / "ddp" / "last.ckpt", weights_only=True)
    assert len(state["samplers"]) == 2 and state["step"] == 3
    assert not torch.equal(state["samplers"][0]["generator"], state["samplers"][1]["generator"])


def test_bad_training_inputs(corpus, tmp_path, capsys, make_hq_dataset):
    def err_of(args):
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        return err

    common = ["--model-config", json.dumps(SMALL), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
              "--no-tensorboard", "--no-progress", "--cache", tmp_path / "cache"]
    assert "no such" in err_of(["train", tmp_path / "missing", "-o", tmp_path / "r0", *common])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no tracks of subset train" in err_of(["train", empty, "-o", tmp_path / "r1", "--cache", tmp_path / "c1",
                                                  *common[:-2]])
    assert main(["train", str(corpus), "-o", str(tmp_path / "run"), *map(str, common)]) == 0
    capsys.readouterr()
    assert "--resume" in err_of(["train", corpus, "-o", tmp_path / "run", *common])
    assert "nothing to resume" in err_of(["train", corpus, "-o", tmp_path / "other", "--resume", *common])
    other = ["--model-config", json.dumps({**SMALL, "bottleneck": 16}), *common[2:]]
    assert "another model config" in err_of(["train", corpus, "-o", tmp_path / "run", "--resume", *other])
    assert "--augment" in err_of(["train", corpus, "-o", tmp_path / "r2", "--augment", "wobble", *common])
    assert "real_speed must be in [1, 2]" in err_of(["train", corpus, "-o", tmp_path / "r3", "--real-speed", "0.5", *common])
    assert "real_eq_db must be in [0, 24]" in err_of(["train", corpus, "-o", tmp_path / "r4", "--real-eq", "-3", *common])
    assert "track_cap_seconds must be at least 0" in err_of(["train", corpus, "-o", tmp_path / "r6", "--track-cap", "-1", *common])
    assert "real_formant must be in [1, 1.5]" in err_of(["train", corpus, "-o", tmp_path / "r5", "--real-formant", "2", *common])


def test_failed_checkpoint_write_keeps_the_previous_one(corpus, tmp_path, monkeypatch):
    import convsep.io.atomic as atomic

    train(config(corpus, tmp_path / "run", epochs=1), progress=False)
    before = (tmp_path / "run" / "last.ckpt").read_bytes()
    real_replace = os.replace

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", disk_full)
    with pytest.raises(ConvSepError, match="No space left"):
        train(config(corpus, tmp_path / "run", epochs=2), resume=True, progress=False)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert (tmp_path / "run" / "last.ckpt").read_bytes() == before
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args,pattern", [
    (["--lr", "nan"], "lr must be a finite number"),
    (["--weight-decay", "inf"], "weight_decay must be a finite number"),
    (["--lookahead", "100"], "--lookahead must be from 0 to"),
])
def test_train_settings_that_used_to_crash_are_one_line_errors(tmp_path, capsys, make_hq_dataset, args, pattern):
    root = tmp_path / "hq"
    make_hq_dataset(root, {("train", "A"): 1.0})
    code = main(["train", str(root), "-o", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
                 "--model-config", json.dumps(SMALL_REAL), "--no-progress", "--no-tensorboard", *args])
    _assert_refused(code, capsys.readouterr().err, pattern)
    assert not (tmp_path / "run").exists()          # no empty run folder left behind


def test_train_refuses_a_nan_in_a_stem_naming_the_file(tmp_path, capsys, make_hq_dataset):
    root = tmp_path / "hq"
    make_hq_dataset(root, {("train", "A"): 1.0})
    bad = root / "train" / "A" / "vocals.wav"
    put_nan(bad, 5, 1)
    code = main(["train", str(root), "-o", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
                 "--model-config", json.dumps(SMALL_REAL), "--no-progress", "--no-tensorboard"])
    _assert_refused(code, capsys.readouterr().err, f"{bad}: contains NaN or infinite samples")
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
