"""Instance files on disk.

A file's path comes from the SHA-256 of its SOP Instance UID only, never from tag text:
``ab/cd/abcd…ef.dcm`` below the storage folder. Files appear atomically: bytes go to a
temporary file in the same folder, which is then linked to its final name, so a reader
never sees half a file and a crash leaves at most a stray temporary file.

With ``fsync`` (radai's default, setting ``archive.fsync``) a file is flushed to disk
before it gets its name, and the folder holding the name is flushed after: once
:meth:`FileStorage.publish` returns, the instance survives a power loss, not only a
crash of radai.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StorageFullError(OSError):
    """The storage folder has no room (ENOSPC/EDQUOT)."""


def relative_path_for(sop_instance_uid: str) -> str:
    """The path of an instance's file, relative to the storage folder."""
    digest = hashlib.sha256(sop_instance_uid.encode("ascii")).hexdigest()
    return f"{digest[:2]}/{digest[2:4]}/{digest}.dcm"


@dataclass(frozen=True)
class Staged:
    """Bytes written to a temporary file, not yet under their final name."""

    relative_path: str
    tmp: Path
    size_bytes: int


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`FileStorage.write` did."""

    relative_path: str
    #: False when an identical file was already there (a re-sent instance).
    created: bool


class FileStorage:
    """Instance files below one folder (local disk or a shared mount)."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        # Folders known to exist: a mkdir per instance costs as much as writing it.
        self._folders: set[Path] = set()

    def path(self, relative_path: str) -> Path:
        """Absolute path of a stored file."""
        return self.root / relative_path

    def read(self, relative_path: str) -> bytes:
        """The stored bytes of an instance."""
        return (self.root / relative_path).read_bytes()

    def write(self, sop_instance_uid: str, data: bytes, sha256: str,
              is_indexed: Callable[[], bool]) -> WriteResult:
        """Store ``data`` under the path of ``sop_instance_uid``.

        If a file is already there with the same content, nothing is written. If one with
        other content is there, it stays when the index knows the instance (the first
        copy received wins) and is replaced when it is a leftover of an interrupted write.
        """
        return self.publish(self.stage(sop_instance_uid, data), sha256, is_indexed)

    def stage(self, sop_instance_uid: str, *parts: bytes) -> Staged:
        """Write ``parts`` one after the other to a temporary file beside the final path.

        Nothing is visible yet: :meth:`publish` gives the file its name, :meth:`discard`
        removes it. Writing releases the interpreter lock, so a receiver can stage an
        instance in another thread while it checks it; giving a header and a body as
        parts spares joining them in memory first.
        """
        rel = relative_path_for(sop_instance_uid)
        final = self.root / rel
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.{id(parts)}.tmp")
        try:
            self._write_new(tmp, parts)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(exc.errno, "storage is full") from None
            raise
        return Staged(rel, tmp, sum(len(part) for part in parts))

    def publish(self, staged: Staged, sha256: str, is_indexed: Callable[[], bool]) -> WriteResult:
        """Give a staged file (whose content has this SHA-256) its final name.

        See :meth:`write` for a file already there.
        """
        final = self.root / staged.relative_path
        try:
            try:
                os.link(staged.tmp, final)
            except FileExistsError:
                if _sha256_of(final) == sha256 or is_indexed():
                    return WriteResult(staged.relative_path, created=False)
                staged.tmp.replace(final)
            if self.fsync:
                _fsync_folder(final.parent)
            return WriteResult(staged.relative_path, created=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(exc.errno, "storage is full") from None
            raise
        finally:
            staged.tmp.unlink(missing_ok=True)

    def discard(self, staged: Staged) -> None:
        """Remove a staged file that will not be published."""
        staged.tmp.unlink(missing_ok=True)

    def _write_new(self, tmp: Path, parts: tuple[bytes, ...]) -> None:
        folder = tmp.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            if self.fsync:  # the folders' own entries (ab/ in the root, cd/ in ab/)
                _fsync_folder(folder.parent)
                _fsync_folder(folder.parent.parent)
            self._folders.add(folder)
        try:
            fh = tmp.open("wb")
        except FileNotFoundError:  # the folder was removed behind our back
            folder.mkdir(parents=True, exist_ok=True)
            fh = tmp.open("wb")
        with fh:
            for part in parts:
                fh.write(part)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())

    def delete(self, relative_path: str) -> None:
        """Remove a stored file (used to undo a write whose indexing failed)."""
        (self.root / relative_path).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (names created or replaced in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
