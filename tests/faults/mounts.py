"""Small filesystems a trial can fill up or turn read-only (tmpfs; needs root).

The target server's data directory lives on one (:class:`Tmpfs` with a size limit), and so
does each trial's journal: "disk full" is a balloon file that takes every free block, and
"read-only" is a remount. :func:`can_mount` says whether this machine lets us (root, and a
kernel that allows tmpfs mounts here); callers skip the disk faults with that reason
otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

__all__ = ["Tmpfs", "can_mount"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60)


def can_mount(probe_dir: Path) -> str | None:
    """None when a tmpfs can be mounted under ``probe_dir``; else why not."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    probe = probe_dir / ".mount-probe"
    probe.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
    if done.returncode != 0:
        return f"mount -t tmpfs failed: {done.stderr.strip()}"
    _run("umount", str(probe))
    with contextlib.suppress(OSError):
        probe.rmdir()
    return None


class Tmpfs:
    """A tmpfs of ``size_mb`` at ``path``: :meth:`fill` it, :meth:`read_only` it, heal it."""

    def __init__(self, path: Path, size_mb: int, *, mode: int = 0o755) -> None:
        self.path = path
        self.size_mb = size_mb
        path.mkdir(parents=True, exist_ok=True)
        done = _run(
            "mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode={mode:o}", "tmpfs", str(path)
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot mount a tmpfs at {path}: {done.stderr.strip()}")
        self.balloon = path / ".balloon"
        self._bound = False  # a read-only bind mount lies over the tmpfs

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> int:
        """Take every free byte but ``leave``; returns how many the balloon holds."""
        want = max(0, self.free_bytes() - leave)
        written = 0
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError), self.balloon.open("ab") as f:
            while written < want:
                n = min(len(chunk), want - written)
                f.write(chunk[:n])
                written += n
            f.flush()
        return written

    def deflate(self) -> None:
        self.balloon.unlink(missing_ok=True)

    def read_only(self) -> None:
        """A remount; the kernel refuses it while a file is open for writing (strangler's
        journal, mid-step), and then a read-only bind mount goes over the same path instead:
        every new open is refused (EROFS), as on a disk turned read-only under a running
        process, while descriptors already open keep writing to the tmpfs beneath."""
        done = _run("mount", "-o", "remount,ro", str(self.path))
        if done.returncode == 0:
            return
        if "busy" not in done.stderr:
            raise RuntimeError(f"cannot remount {self.path} read-only: {done.stderr.strip()}")
        bind = _run("mount", "--bind", str(self.path), str(self.path))
        ro = _run("mount", "-o", "remount,ro,bind", str(self.path))
        if bind.returncode != 0 or ro.returncode != 0:
            if bind.returncode == 0:
                _run("umount", str(self.path))
            raise RuntimeError(
                f"cannot make {self.path} read-only: {bind.stderr.strip()} {ro.stderr.strip()}"
            )
        self._bound = True

    def read_write(self) -> None:
        if self._bound:
            _run("umount", str(self.path))  # the read-only bind; the tmpfs beneath remains
            self._bound = False
        _run("mount", "-o", "remount,rw", str(self.path))

    def heal(self) -> None:
        self.read_write()
        self.deflate()

    def unmount(self) -> None:
        self.heal()
        done = _run("umount", str(self.path))
        if done.returncode != 0:
            _run("umount", "-l", str(self.path))
