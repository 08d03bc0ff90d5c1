"""A wheel that works: the wheel built from the repository carries every bundled asset, and
installed without ``-e`` into a fresh virtual environment it runs ``convsep info``,
``convsep demo`` and ``convsep export`` (which checks parity on the bundled demo song).

How it stays fast and offline: the wheel is built from a copy of the tree (so no ``build/`` left
over in the checkout adds stale files) with ``--no-build-isolation``, and installed alone
(``--no-deps --no-index``). The new environment finds torch, numpy and the other dependencies
through a .pth file that names this environment's site-packages folders. A folder named in a .pth
file goes on ``sys.path`` without the .pth files inside it being run, so the repository's editable
install (a .pth hook) stays out; the commands run from a folder outside the repository, and the
environment's own site-packages comes first on ``sys.path``: ``convsep`` can only come from the
wheel, which ``test_convsep_comes_from_the_wheel`` checks.

Only the command line and ``import convsep`` are used here, no module paths inside the package.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
import soundfile as sf

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("vocals", "drums", "bass", "other")
BIN = "Scripts" if os.name == "nt" else "bin"
# Left out of the copy when git cannot list the tree: build outputs and caches anywhere, and the
# repository's own environment and output folders at its top.
SKIP_ANYWHERE = {".git", "__pycache__", ".pytest_cache", "build", "dist"}
SKIP_AT_TOP = {".venv", "venv", "separated", "runs", "out", "work"}


@dataclass
class Installed:
    source: Path        # the copy of the repository the wheel was built from
    wheel: Path
    venv: Path
    env: dict           # environment for commands run in the new virtual environment
    work: Path          # a folder outside the repository to run them from

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return _run([*args], cwd=self.work, env=self.env, timeout=timeout)

    def convsep(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.run(str(self.venv / BIN / "convsep"), *args, timeout=timeout)


def _run(cmd: list, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _copy_tree(dest: Path) -> None:
    """The files a clean clone plus the uncommitted work has: git's list when git can give it."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        def skip(folder: str, names: list[str]) -> set[str]:
            top = Path(folder).resolve() == ROOT
            return {n for n in names if n in SKIP_ANYWHERE or n.endswith((".egg-info", ".pyc"))
                    or (top and n in SKIP_AT_TOP)}
        shutil.copytree(ROOT, dest, ignore=skip, dirs_exist_ok=True)
        return
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():   # a file still in git's index may be moved or deleted in the work tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _dependency_folders() -> list[str]:
    """This environment's site-packages folders, where the wheel's dependencies are installed."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [f for f in dict.fromkeys(folders) if Path(f).is_dir() and Path(f).resolve() != ROOT]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source, wheels, venv, work = base / "source", base / "wheels", base / "venv", base / "work"
    for folder in (source, wheels, work):
        folder.mkdir()
    _copy_tree(source)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", wheels, source], cwd=base)
    (wheel,) = wheels.glob("convsep-*.whl")

    # The wheel goes in before the .pth file, so pip sees an empty environment and never the
    # editable install. pip >= 22.3 installs into another interpreter's environment (--python).
    pip_major, pip_minor = (int(part) for part in version("pip").split(".")[:2])
    if (pip_major, pip_minor) >= (22, 3):
        _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base)
        python = venv / BIN / "python"
        _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
              wheel], cwd=base)
    else:
        _run([sys.executable, "-m", "venv", venv], cwd=base)
        python = venv / BIN / "python"
        _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=base)
    own = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work).stdout
    Path(own.strip(), "convsep_test_dependencies.pth").write_text("\n".join(_dependency_folders()) + "\n")

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / BIN}{os.pathsep}{env.get('PATH', '')}"
    return Installed(source, wheel, venv, env, work)


def test_the_wheel_carries_every_bundled_asset(installed):
    package = installed.source / "convsep"
    assets = {p.relative_to(installed.source).as_posix() for p in package.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert any(a.startswith("convsep/pretrained/demo/") for a in assets), sorted(assets)
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    missing = sorted(assets - names)
    assert not missing, f"not in {installed.wheel.name} (see [tool.setuptools.package-data]): {missing}"


def test_convsep_comes_from_the_wheel(installed):
    out = installed.run(str(installed.venv / BIN / "python"), "-c",
                        "import convsep, sys; print(convsep.__file__); print(sys.prefix)").stdout.splitlines()
    module, prefix = Path(out[0]).resolve(), Path(out[1]).resolve()
    assert prefix == installed.venv.resolve()
    assert module.is_relative_to(installed.venv.resolve()), module
    assert not module.is_relative_to(ROOT), module


def test_info(installed):
    out = installed.convsep("info").stdout
    assert out.startswith("model: default"), out
    assert "parameters" in out and "config:" in out, out


def test_demo_writes_the_stems(installed):
    outdir = installed.work / "demo"
    out = installed.convsep("demo", "-o", outdir).stdout
    assert "mean" in out, out
    (folder,) = [p.parent for p in outdir.glob("*/vocals.wav")]
    lengths = set()
    for name in (*SOURCES, "mixture"):
        info = sf.info(str(folder / f"{name}.wav"))
        assert info.frames > 0, name
        lengths.add(info.frames)
    assert len(lengths) == 1, lengths
    assert (folder / "spectrograms.png").stat().st_size > 0


def test_export_checks_parity_on_the_demo(installed):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = installed.convsep("export", "-o", installed.work / "default.onnx").stdout
    assert (installed.work / "default.onnx").stat().st_size > 0
    assert "against PyTorch on the demo song" in out, out
