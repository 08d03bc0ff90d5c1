"""convsep.data.mir1k: the split by singer and the karaoke bank built from it."""
import torch

from convsep.data import mir1k
from convsep.data.karaoke_bank import KaraokeBank


def test_mir1k_split_by_singer_and_bank(fake_mir1k, tmp_path):
    train_clips = mir1k.list_clips(fake_mir1k, "train")
    valid_clips = mir1k.list_clips(fake_mir1k, "valid")
    assert {c.singer for c in valid_clips} == {"abjones", "annar"}
    assert not {c.singer for c in train_clips} & set(mir1k.VALID_SINGERS)
    bank = KaraokeBank.load(fake_mir1k, tmp_path / "k", "train")
    assert len(bank.names) == 6 and bank.audio.shape[1] == 6 * 3 * 44100
    assert bank.bandwidth_hz == 8000
    vocals, accomp, rms, speed = bank.sample(4, 4096, torch.Generator().manual_seed(0))
    assert vocals.shape == accomp.shape == (4, 4096) and rms.shape == (4, 2) and torch.equal(speed, torch.ones(4))
    g = torch.Generator().manual_seed(0)                  # the same draws, gathered sample by sample
    usable = bank.lengths - 4096 + 1
    clip = torch.multinomial(usable.double() / usable.sum(), 4, replacement=True, generator=g)
    start = (torch.rand(4, generator=g, dtype=torch.float64) * usable[clip]).long().minimum(usable[clip] - 1)
    index = (bank.offsets[clip] + start)[:, None] + torch.arange(4096)
    assert torch.equal(vocals, bank.audio[0, index].float() / 32767)
    assert torch.equal(accomp, bank.audio[1, index].float() / 32767)
    again = KaraokeBank.load(fake_mir1k, tmp_path / "k", "train")        # from the cache
    assert torch.equal(again.audio, bank.audio)
