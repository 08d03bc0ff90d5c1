"""The convsep command and the trainer keep large freed blocks (convsep.runtime.allocator)."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from convsep.errors import ConvSepError
from convsep.runtime import allocator

PROBE = textwrap.dedent("""
    import ctypes, torch
    from convsep.runtime.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def mapped_while_holding(mib):
        t = torch.empty(mib << 18)           # float32: mib MiB
        t.fill_(1.0)
        mapped = libc.mallinfo2().hblkhd
        del t
        return mapped >> 20

    before = mapped_while_holding(64)
    print(keep_freed_memory(), before, mapped_while_holding(64), mapped_while_holding(64))
""")


def _glibc_version() -> tuple[int, ...]:
    name, version = platform.libc_ver()
    return tuple(int(part) for part in version.split(".")) if name == "glibc" and version else ()


@pytest.mark.skipif(not sys.platform.startswith("linux") or _glibc_version() < (2, 33),
                    reason="mallopt is glibc's; mallinfo2 needs glibc 2.33")
def test_large_tensors_come_from_the_heap_once_set():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CONVSEP_KEEP_FREED_MEMORY"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    done, before, after, again = out[0], *map(int, out[1:])
    assert done == "True"
    assert before >= 64                      # glibc's default: a fresh mapping for each 64 MiB tensor
    assert after < 64 and again < 64         # then: served from the heap, and reused


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_cpu_training_sets_it_before_loading_data(monkeypatch, tmp_path):
    from convsep.training import trainer

    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append(1))
    with pytest.raises(ConvSepError, match="no such dataset folder"):
        trainer.Trainer(trainer.TrainConfig(root=str(tmp_path / "missing"), outdir=str(tmp_path / "run")))
    assert calls == [1]


def test_the_command_sets_it(monkeypatch, capsys):
    import convsep.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert cli.main(["info", "default"]) == 0
    assert calls == [1]


def test_the_environment_can_leave_it(monkeypatch):
    import convsep

    monkeypatch.setenv("CONVSEP_KEEP_FREED_MEMORY", "0")
    assert convsep.keep_freed_memory() is False
