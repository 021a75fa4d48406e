"""Outputs are written whole or not at all.

A CRM imports whatever file it finds: a CSV cut short by a full disk would look like a
valid, smaller export. Every output is written to a temporary file beside its
destination and renamed over it only when complete (a rename within one folder is
atomic), and the destination is checked before the work starts, so a wrong `--out`
costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputError(ValueError):
    """The output cannot be written where asked; the message says why."""


def check_destination(path: str | Path) -> Path:
    """The output file ``path`` can be created: it is not a folder, its folder can be made
    and written to. Raises `OutputError` at once, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file path such as {path / 'scores.csv'}")
    folder = path.parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {existing} (no permission, or not a folder)")
    return path


@contextlib.contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error the
    temporary file replaces ``path``, else it is removed and ``path`` is left as it was.

    A failed write (a full disk: OSError) becomes an `OutputError` naming the file.
    """
    path = check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
