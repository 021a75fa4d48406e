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
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


class OutputError(ValueError):
    """The output cannot be written where asked; the message says why."""


@contextlib.contextmanager
def folder_written_whole(path: str | Path) -> Iterator[Path]:
    """`written_whole` for a folder of parts: yield a hidden folder beside ``path`` to fill;
    when the block ends without an error it replaces ``path`` (an earlier output there is
    removed first), else it is removed and ``path`` is left as it was."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; expected a folder to write the parts into")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _new_beside(path, folder=True)
    try:
        yield partial
        if path.exists():
            shutil.rmtree(path)
        partial.rename(path)
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)


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
    temporary = _new_beside(path, folder=False)
    try:
        yield temporary
        if path.exists():  # an overwrite keeps the file's permissions, as `open` would
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _new_beside(path: Path, folder: bool) -> Path:
    """A new hidden file or folder beside ``path`` with the permissions a plain `open` or
    `mkdir` gives (the umask applies). `tempfile`'s are private to the owner (0600,
    0700), and the output would keep that: a scores file the CRM's import user could not
    read, unlike the file it replaces."""
    while True:
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
        try:
            if folder:
                candidate.mkdir(mode=0o777)
            else:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate
