"""Training on real four-stem songs: grouped batches for bass-in-other songs, median validation."""
from __future__ import annotations

import torch

from convsep.constants import SOURCES
from tests.conftest import write_real_song


def test_training_on_real_songs_scores_grouped_batches_and_the_median(real_root, tmp_path):
    from convsep.training.config import TrainConfig
    from convsep.training.trainer import Trainer

    write_real_song(real_root / "musdb7train" / "Artist - Long Song", 99, seconds=3.0)
    cfg = TrainConfig(root=str(real_root), outdir=str(tmp_path / "run"), model="convsep-stereo",
                      model_overrides={"conv1_filters": 8, "conv2_filters": 4, "bottleneck": 16},
                      batch_size=2, blocks_per_excerpt=1, steps_per_epoch=2, epochs=1, valid_seconds=1.0,
                      grouped_share=1.0, track_cap_seconds=0.5, tensorboard=False)
    trainer = Trainer(cfg, progress=False)
    assert trainer.real_songs and trainer.grouped_sampler is not None
    assert trainer.grouped_sampler.cache.num_tracks == 2 and trainer.sampler.cache.num_tracks == 4
    # every song is longer than its excerpts by more than the cap: the 3 s song is drawn no
    # more often than the 1 s songs
    for sampler in (trainer.sampler, trainer.grouped_sampler):
        p = sampler.track_probabilities
        assert torch.allclose(p, torch.full_like(p, 1 / len(p)))
    seen = []
    original = trainer.loss_of.backward

    def spy(model, sources, bandwidth_bins=None, groups=None, share=1.0):
        seen.append((sources.shape[0], groups, share))
        return original(model, sources, bandwidth_bins, groups, share)

    trainer.loss_of.backward = spy
    result = trainer.run()
    assert result["step"] == 2
    assert ((2, None, 0.5) in seen) and ((2, ((0,), (1,), (2, 3)), 0.5) in seen)
    assert set(result["history"][-1]["valid_sdr"]) == set(SOURCES)


def test_beside_another_corpus_only_the_real_songs_validate(real_root, tmp_path, make_hq_dataset):
    import json

    from convsep.training.config import TrainConfig
    from convsep.training.trainer import Trainer

    other = tmp_path / "corpus"
    make_hq_dataset(other, {("train", f"Synth {i}"): 2.0 for i in range(3)})
    (other / "manifest.json").write_text(json.dumps({"tracks": [
        {"track": f"Synth {i}", "subset": "train", "split": "valid" if i == 0 else "train"} for i in range(3)]}))
    cfg = TrainConfig(root=str(real_root), extra_roots=[str(other)], outdir=str(tmp_path / "run"), is_wav=True,
                      model="convsep-stereo", model_overrides={"conv1_filters": 8, "conv2_filters": 4, "bottleneck": 16},
                      batch_size=2, blocks_per_excerpt=1, steps_per_epoch=1, epochs=1, tensorboard=False)
    trainer = Trainer(cfg, progress=False)
    assert sorted(name for name, _ in trainer.valid) == ["3.C", "Artist - Song 2"]
    assert trainer.sampler.cache.num_tracks == 3 + 2      # Synth 0 is neither trained on nor validated
