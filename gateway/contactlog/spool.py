"""The local spool: fsync'd JSON-lines files that hold contacts while PostgreSQL is away, and how a
replayer claims one so that no record is lost or replayed twice, whichever processes share them."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from .. import metrics
from .record import ContactRecord, storable

log = logging.getLogger(__name__)
QUARANTINE = "quarantine.jsonl"


class Spool:
    """This process's spool file, in a directory other processes may share.

    Every process appends to a file of its own (`contacts-PID-RANDOM.jsonl`); any process may
    replay any file. Ownership is one exclusive flock on the file, taken before anything else is
    done to it:

    - a writer locks the file it opened and appends only if its path still names that file;
      otherwise a replayer has claimed it, and the writer starts a fresh file under its path;
    - a replayer (`claim`) locks a `.jsonl` file, then gives it a name of its own
      (`...<unique>.replaying`) without ever replacing a file, and keeps the lock until the
      records are in the log and the file is removed. A claimed file left behind (its replay
      failed, or its process died) is locked and replayed under the name it has.

    No file is ever renamed onto, and only the lock holder removes a claimed file, whose name no
    one else will reuse: a record leaves the spool only once it is in the log.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.path = self.dir / f"contacts-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"

    @property
    def quarantine(self) -> Path:
        """Where records PostgreSQL refuses, and spool lines that cannot be read, are kept aside."""
        return self.dir / QUARANTINE

    def write(self, batch: Sequence[ContactRecord], path: Path | None = None) -> None:
        """Append a batch and fsync it; once this returns the records survive a crash."""
        target = path or self.path
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        data = "".join(r.to_json() + "\n" for r in batch)
        while True:
            with open(target, "a", encoding="utf-8") as f:
                if not _lock_while_named(f, target):
                    continue  # claimed by a replayer since we opened it: write a fresh file
                size = os.fstat(f.fileno()).st_size
                fresh = size == 0
                if not fresh and not _ends_a_line(target, size):
                    # An earlier append failed part-way (disk full, quota): its torn line must not
                    # swallow this one, which is reported durable. The torn part is quarantined alone.
                    data = "\n" + data
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                break
        if created or fresh:
            _fsync_dir(self.dir)  # the new file's name must survive a crash too
        if target != self.quarantine:
            metrics.SPOOLED.inc(len(batch))

    def files(self) -> list[Path]:
        """Every spool file in the directory, of any process: claimed ones left behind first."""
        if not self.dir.exists():
            return []
        return [*sorted(self.dir.glob("contacts-*.replaying")), *sorted(self.dir.glob("contacts-*.jsonl"))]


@contextlib.contextmanager
def claim(path: Path) -> Iterator[Path | None]:
    """Own a spool file until the block ends. Yields the name it has while claimed, or None when
    another process holds it or has already replayed it."""
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(open(path, "rb"))
        except FileNotFoundError:
            f = None
        yield None if f is None else _take(f, path)


def _take(f: IO[Any], path: Path) -> Path | None:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None  # a replayer holds it, or a writer is mid-append: next round
    if not _names(path, f):
        return None  # replayed and removed between our open and our lock
    if path.suffix != ".jsonl":
        return path  # claimed before, and left behind: ours now, under its name
    claimed = path.with_name(f"{path.stem}.{uuid.uuid4().hex[:12]}.replaying")
    _move_without_replacing(path, claimed)
    return claimed


def read(path: Path, quarantine: Path) -> list[ContactRecord]:
    """Records of a spool file, once per id; a line that cannot be read is kept aside, not retried."""
    records: dict[uuid.UUID, ContactRecord] = {}
    bad: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = ContactRecord.from_json(line)
            except (ValueError, TypeError, KeyError):
                bad.append(line if line.endswith("\n") else line + "\n")
                continue
            records.setdefault(record.id, storable(record))  # spooled by a version that did not clean
    if bad:
        log.error("spool %s: %d unreadable line(s) kept in %s", path.name, len(bad), quarantine.name)
        with open(quarantine, "a", encoding="utf-8") as q:
            q.write("".join(bad))
            q.flush()
            os.fsync(q.fileno())
    return list(records.values())


def _names(path: Path, f: IO[Any]) -> bool:
    """Whether `path` still names the open file `f` (a replayer may have claimed or removed it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(f.fileno())
    return own.st_nlink > 0 and (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _lock_while_named(f: IO[Any], path: Path) -> bool:
    """Lock `f` for appending; False once `path` no longer names it. A replayer that holds the lock
    renames the file at once, so a writer waits microseconds here, never for a whole replay."""
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _names(path, f):
                return False
            time.sleep(0.001)
            continue
        return _names(path, f)


def _move_without_replacing(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # fails rather than replace an existing file
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        os.rename(src, dst)  # no hard links on this file system; `dst` is a fresh unique name
        return
    os.unlink(src)


def _ends_a_line(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
