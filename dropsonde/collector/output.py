"""The published files: JSON and CSV tables written row by row, into a
staging directory that replaces the output directory only once everything
is written and fsynced.

The swap is one ``renameat2(RENAME_EXCHANGE)``: readers (and a crash) see
the old directory or the new one, never none. On a file system without it,
two renames, with the old directory set aside under a name that the next
run recognizes and puts back if a crash came between them: a killed run
never loses the previous publication (or the trends it holds).
"""

from __future__ import annotations

import csv
import ctypes
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, Optional, Sequence

from dropsonde.errors import DropsondeError, ExitStatus

log = logging.getLogger(__name__)
RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


class OutputError(DropsondeError):
    """The output directory ``path`` cannot be written or replaced; the caller names
    the option. ``status``: USAGE when the directory given is not one to replace
    (bad input), FAILURE when it could not be written."""

    def __init__(self, path: Path, problem: str, status: ExitStatus = ExitStatus.USAGE) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.status = status
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STALE_AFTER = 6 * 3600  # seconds: a staging directory this old belongs to no running aggregate


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading quote
    (OWASP's advice against CSV injection); numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class TableWriter:
    """``NAME.json`` (a list of objects) and ``NAME.csv`` (header first), one row at a time."""

    def __init__(self, directory: Path, name: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.json: IO[str] = open(directory / f"{name}.json", "w", encoding="utf-8")
        self.csv: IO[str] = open(directory / f"{name}.csv", "w", encoding="utf-8", newline="")
        self.csv_writer = csv.writer(self.csv, lineterminator="\n")
        self.csv_writer.writerow([csv_cell(c) for c in self.columns])
        self.rows = 0

    def write(self, row: Dict[str, Any]) -> None:
        self.json.write(("[\n  " if self.rows == 0 else ",\n  ") + json.dumps({c: row[c] for c in self.columns}))
        self.csv_writer.writerow([csv_cell(row[c]) for c in self.columns])
        self.rows += 1

    def close(self) -> None:
        self.json.write("[]\n" if self.rows == 0 else "\n]\n")
        for handle in (self.json, self.csv):
            _close_durably(handle)

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.json.close()
            self.csv.close()


def write_file(directory: Path, name: str, text: str) -> None:
    with open(directory / name, "w", encoding="utf-8") as handle:
        handle.write(text)
        _close_durably(handle)


def _close_durably(handle: IO[str]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)  # published: readable by the web server whatever the umask
    handle.close()


def check_replaceable(out: Path, names: Iterable[str], folders: Iterable[str] = ()) -> None:
    """Refuse an ``out`` that replacing would lose something in: a symbolic
    link (it would become a directory) or a directory holding anything but a
    previous publication (``summary.json``, the files ``names`` and the
    ``folders``). The old directory is removed whole when the new one takes
    its place, so a web root given by mistake would lose its other pages."""
    if out.is_symlink():
        raise OutputError(out, "is a symbolic link; give the directory it points to "
                               "(the link would be replaced by a directory)")
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(out, "exists and is not a directory")
    present = sorted(entry.name for entry in out.iterdir())
    if present and "summary.json" not in present:
        raise OutputError(out, "not empty and not a previous publication (no summary.json); "
                               "aggregate replaces the whole directory, so give it one of its own")
    folders = set(folders)
    foreign = [name for name in present if not ((name in set(names) and (out / name).is_file())
                                                or (name in folders and (out / name).is_dir()
                                                    and not (out / name).is_symlink()))]
    if foreign:
        raise OutputError(out, f"holds {foreign[0]!r}, which aggregate does not write; "
                               "aggregate replaces the whole directory, so move it elsewhere")


def recover_interrupted_swap(out: Path) -> None:
    """Put back the previous publication that a run killed between the two
    renames of the fallback swap left set aside (``out`` is then missing)."""
    if out.exists() or out.is_symlink():
        return
    for aside in sorted(out.parent.glob(f".{out.name}.*.old")):
        previous = aside / "previous"
        if previous.is_dir() and not previous.is_symlink():
            os.rename(previous, out)
            _fsync_directory(out.parent)
            log.warning("%s: put back from %s, where a run that did not finish had set it aside", out, aside)
            shutil.rmtree(aside, ignore_errors=True)
            return


def remove_stale(out: Path, older_than: float = STALE_AFTER, now: Optional[float] = None) -> None:
    """Staging (``.NAME.*.tmp``) and set-aside (``.NAME.*.old``) directories
    that a killed run left beside ``out``, once they are older than any run:
    a run killed by SIGKILL or a timeout must not leave one more each time."""
    limit = (time.time() if now is None else now) - older_than
    for pattern in (f".{out.name}.*.tmp", f".{out.name}.*.old"):
        for path in out.parent.glob(pattern):
            try:
                if path.is_dir() and not path.is_symlink() and path.lstat().st_mtime < limit:
                    shutil.rmtree(path)
                    log.warning("%s: removed, left by an earlier run that did not finish", path)
            except OSError as exc:
                log.warning("%s: left by an earlier run, cannot be removed (%s)", path, exc.strerror or exc)


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh directory beside ``out``, renamed to ``out`` when the block
    succeeds and removed when it fails (also on SIGTERM, which the command
    turns into SystemExit): the previous output is never half replaced and
    no partial directory is left behind."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        directory = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise OutputError(out, f"cannot write beside it: {exc.strerror or exc}", ExitStatus.FAILURE) from None
    try:
        yield directory
        directory.chmod(0o755)
        for folder in [path for path in directory.iterdir() if path.is_dir()] + [directory]:
            _fsync_directory(folder)  # the entries, not only the files' data, before the swap
        _replace_directory(directory, out)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _exchange(new: Path, out: Path) -> bool:
    """Swap ``new`` and ``out`` in one system call; False where the system or
    file system cannot (then the caller renames twice)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(new), AT_FDCWD, os.fsencode(out), RENAME_EXCHANGE) == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(out))


def _replace_directory(new: Path, out: Path) -> None:
    """Put ``new`` in the place of ``out``: exchanged in one call where the
    file system can (``new`` then holds the old directory, removed after);
    else ``out`` is moved aside first, where ``recover_interrupted_swap``
    finds it if the run dies before the second rename."""
    if not out.exists() and not out.is_symlink():
        os.rename(new, out)
    elif _exchange(new, out):
        _fsync_directory(out.parent)
        shutil.rmtree(new, ignore_errors=True)
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, aside / "previous")
        os.rename(new, out)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_directory(out.parent)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
