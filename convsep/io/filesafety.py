"""Where outputs may go and how they get there safely.

- Every output path lies inside its output folder: names from model files or inputs are
  single path components (``safe_component``) and joined paths are checked (``inside``).
- A track folder is written by one run at a time (``FolderClaim``: an exclusive ``flock`` on
  ``.convsep.lock``, released by the kernel if the process dies), and finished files are
  moved into place without replacing anything unless asked (``commit_file``: ``os.link``
  fails if the target exists, even one created a microsecond earlier by another process).
- Temporaries carry the writer's pid (``.<name>.<pid>.tmp``, ``<name>.tmp-<pid>-...``), so a
  later run removes those of processes that no longer exist (``remove_stale_temporaries``).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Iterable

from convsep.errors import ConvSepError

LOCK_NAME = ".convsep.lock"
_TEMP_FILE = re.compile(r"^\..+\.(\d+)\.tmp$")
_ERRNO_WORDS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system or limit",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is not a folder",
}


def describe_os_error(exc: OSError) -> str:
    """One line: the file and the reason, e.g. ``out/x.wav: no space left on the device``."""
    reason = _ERRNO_WORDS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename if exc.filename is not None else ""
    return f"{name}: {reason}" if name else reason


def write_problem(path: str | os.PathLike, exc: BaseException) -> str:
    """Why writing ``path`` failed, in words. Some writers report a full disk without an
    errno (libsndfile: "System error", numpy: "N requested and M written"): then the free
    space of the folder tells."""
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    try:
        stats = os.statvfs(Path(path).parent)
        if stats.f_bavail * stats.f_frsize < (1 << 20):
            return _ERRNO_WORDS[errno.ENOSPC]
    except OSError:
        pass
    if _at_file_size_limit(path):
        return _ERRNO_WORDS[errno.EFBIG]
    text = str(exc).strip()
    return (text.splitlines()[-1] if text else type(exc).__name__)[:200]


def _at_file_size_limit(path: str | os.PathLike) -> bool:
    """Whether ``path`` has grown to the process's file-size limit (RLIMIT_FSIZE), which
    libsndfile reports as "System error"."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return soft != resource.RLIM_INFINITY and os.path.getsize(path) >= soft - (1 << 16)
    except (ImportError, OSError, ValueError):
        return False


def safe_component(name: str, what: str = "name") -> str:
    """``name`` if it is usable as one file name inside a folder; ConvSepError otherwise."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
            or "\\" in name or "\0" in name or len(name.encode(errors="surrogateescape")) > 255):
        raise ConvSepError(f"{what} {name!r} cannot be used as a file or folder name inside the output folder")
    return name


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` if it lies inside ``root`` (compared as absolute, normalised paths)."""
    root_abs = os.path.normpath(os.path.abspath(root))
    path_abs = os.path.normpath(os.path.abspath(path))
    if os.path.commonpath([root_abs, path_abs]) != root_abs or path_abs == root_abs:
        raise ConvSepError(f"{path}: refusing to write outside the output folder {root}")
    return Path(path)


def inside_real(root: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``folder`` if it is a real folder (not a symbolic link) whose resolved path lies inside
    ``root``'s resolved path: a link planted at ``OUTDIR/<track>`` must not send the stems
    elsewhere."""
    if os.path.islink(folder):
        raise ConvSepError(f"{folder}: is a symbolic link; refusing to write through it "
                           "(remove it or choose another output folder)")
    root_real, folder_real = os.path.realpath(root), os.path.realpath(folder)
    if os.path.commonpath([root_real, folder_real]) != root_real or folder_real == root_real:
        raise ConvSepError(f"{folder}: resolves to {folder_real}, outside the output folder {root}; refusing to write there")
    return Path(folder)


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuses a target that exists and is neither a regular file nor a symbolic link (which
    is replaced, not followed): a device, FIFO, socket or folder is never replaced by a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConvSepError(describe_os_error(exc)) from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise ConvSepError(f"{path}: is {kind}, not a regular file; refusing to replace it")


def temporary_path(path: str | os.PathLike) -> Path:
    """The temporary name a file is written under before it is moved to ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_created_folders(created: Iterable[Path]) -> None:
    """Removes the folders a run created (innermost first), each only while it is empty: the
    first that is not (or cannot be removed) stops it, and everything above it stays."""
    for made in created:
        try:
            made.rmdir()
        except OSError:
            break


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Removes ``.<name>.<pid>.tmp`` files in ``folder`` left by processes that are gone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_FILE.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not pid_alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def remove_stale_folders(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Removes ``<prefix>-<pid>-*`` folders in ``parent`` whose process is gone (the
    temporary folders of commands that build a whole folder and rename it into place)."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-")
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def commit_file(tmp: Path, target: Path, overwrite: bool) -> None:
    """Moves the finished ``tmp`` to ``target``. Without ``overwrite`` an existing target is
    never replaced: ``os.link`` creates the name only if it does not exist (atomically).
    Something that is not a regular file (a device, FIFO, socket) is never replaced."""
    check_replaceable(target)
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise ConvSepError(f"{target} appeared while this run was writing (another process?); "
                           "it was kept; pass --overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # No hard links on this file system: the folder claim still keeps other convsep runs out.
        if os.path.lexists(target):
            raise ConvSepError(f"{target} exists; pass --overwrite to replace it") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


class FolderClaim:
    """Exclusive right to write into ``folder`` for this process (``with FolderClaim(f):``).

    Another convsep process that claims the same folder is refused at once with a clear
    message. The lock is an ``flock`` on ``folder/.convsep.lock``: the kernel releases it
    when the process ends, however it ends, and the file is removed on release.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderClaim":
        for attempt in range(100):
            try:
                # O_NOFOLLOW: a lock file planted as a link must not truncate what it points to
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except FileNotFoundError:
                # A run that lost the race for a folder it had also created removes it if empty.
                if attempt < 99:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    continue
                raise ConvSepError(f"{self.folder}: the output folder keeps disappearing") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ConvSepError(f"{self.path}: is a symbolic link; refusing to use it as the lock "
                                       "(remove it)") from None
                raise ConvSepError(f"{self.folder}: cannot write in this folder "
                                   f"({_ERRNO_WORDS.get(exc.errno) or exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise ConvSepError(f"{self.folder}: another convsep run is writing this folder{who}; "
                                   "wait for it to finish or choose another output folder") from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    os.close(fd)
                    raise
                # No locks on this file system: the no-replace commit still protects the files.
                break
            # The holder before us may have removed the file after we opened it: then our
            # lock is on a deleted file and we must lock the one that is there now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise ConvSepError(f"{self.path}: is not a regular file; refusing to use it as the lock")
                break
            os.close(fd)
        else:
            raise ConvSepError(f"{self.folder}: could not claim the folder (its lock file keeps changing)")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderClaim":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
