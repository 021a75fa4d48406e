"""Outputs written whole: the permissions a user's tools expect of a new or rewritten file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.files import folder_written_whole, written_whole


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_a_new_output_gets_the_mode_of_a_plain_file(tmp_path: Path) -> None:
    # a scores file the CRM's import user (another account) reads, like any file its
    # owner creates: 0644 under umask 022, not tempfile's private 0600
    out = tmp_path / "scores.csv"
    with written_whole(out) as partial:
        partial.write_text("contact_id,probability\n")
    assert _mode(out) == 0o644
    with folder_written_whole(tmp_path / "parts") as folder:
        (folder / "part-0.csv").write_text("x\n")
    assert _mode(tmp_path / "parts") == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts", "scores.csv"]


@pytest.mark.usefixtures("umask_022")
def test_a_rewritten_output_keeps_its_permissions(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    out.chmod(0o640)  # its owner chose who reads it
    with written_whole(out) as partial:
        partial.write_text("new\n")
    assert out.read_text() == "new\n"
    assert _mode(out) == 0o640
