"""Broken disks for the storage fault tests, made as real as this machine allows.

- :class:`TmpfsDisk`: DATA_DIR on a small tmpfs (needs root and a sandbox that allows
  ``mount``), filled with a file until the kernel answers ENOSPC, then freed.
- :class:`FileSizeLimit`: where mounting is refused, the server process gets an
  ``RLIMIT_FSIZE`` of one byte at run time (``prlimit``), so every write of its files fails
  (EFBIG instead of ENOSPC), as on a full disk; raising it again is "freeing space".
- :func:`read_only_dir`: a directory the server cannot write: a read-only tmpfs as root,
  ``chmod 555`` otherwise, else a path below a regular file.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.serve_process import ServeProcess

CHUNK = 4096  # fill to the last page, so no later write fits in the remainder


def mount_tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs at ``path``; False when this sandbox refuses (not root, no CAP)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class TmpfsDisk:
    """A 4 MB tmpfs as DATA_DIR."""

    kind = "tmpfs 4 MB filled to ENOSPC"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.filler = data_dir / "filler"

    def prepare(self, server: ServeProcess) -> None:
        pass

    def fill(self) -> int:
        """Write until the disk is full; the bytes written."""
        written = 0
        with self.filler.open("wb", buffering=0) as handle:
            with contextlib.suppress(OSError):
                while True:
                    written += handle.write(b"\0" * CHUNK)
        return written

    def free(self) -> None:
        self.filler.unlink()


class FileSizeLimit:
    """No growing files for the server process while "full"."""

    kind = "RLIMIT_FSIZE of 1 byte set on the running server"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: ServeProcess | None = None

    def prepare(self, server: ServeProcess) -> None:
        server.file_size_limit = resource.RLIM_INFINITY  # also ignores SIGXFSZ in the child
        self._server = server

    def fill(self) -> int:
        assert self._server is not None
        # No write past the first byte of any file: what a disk with no free block refuses
        # (and a little more: overwriting in place fails too).
        resource.prlimit(self._server.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        return 0

    def free(self) -> None:
        assert self._server is not None
        unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.prlimit(self._server.pid, resource.RLIMIT_FSIZE, unlimited)


@contextlib.contextmanager
def full_disk(data_dir: Path, force_limit: bool = False) -> Iterator[TmpfsDisk | FileSizeLimit]:
    """A disk that can be filled and freed, at ``data_dir``."""
    if not force_limit and mount_tmpfs(data_dir, "size=4m"):
        try:
            yield TmpfsDisk(data_dir)
        finally:
            unmount(data_dir)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield FileSizeLimit(data_dir)


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[tuple[Path, str]]:
    """A directory the server cannot write (and how it was made)."""
    if mount_tmpfs(path, "ro,size=1m"):
        try:
            yield path, "read-only tmpfs"
        finally:
            unmount(path)
    elif os.geteuid() != 0:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o555)
        try:
            yield path, "chmod 555"
        finally:
            path.chmod(0o755)
    else:  # root without mount: permissions do not stop root; a file is no directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a file where the data directory should be")
        yield path / "data", "a path below a regular file"
