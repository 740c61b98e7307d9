"""The published files: JSON and CSV tables written row by row as the
queries stream them (memory does not grow with the data), into a staging
directory that replaces ``--out`` only once everything is written.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Dict, Iterator, Sequence

from dropsonde.errors import DropsondeError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh directory beside ``out``, renamed to ``out`` when the block
    succeeds and removed when it fails: the previous output is never half
    replaced and no partial directory is left behind."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise DropsondeError(f"--out {out}: cannot write beside it: {exc.strerror or exc}") from None
    try:
        yield directory
        directory.chmod(0o755)
        _fsync_directory(directory)
        _replace_directory(directory, out)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _replace_directory(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and
    removed after, so readers see the old or the new directory (in between
    lie two rename calls, in which ``out`` is briefly absent)."""
    if not out.exists() and not out.is_symlink():
        os.rename(new, out)
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
