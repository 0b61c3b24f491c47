import os
import stat

import pytest

from tcap_viz.atomic import atomic_path, atomic_write_text


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_refuses_to_overwrite_when_asked(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "one", overwrite=False)
    with pytest.raises(FileExistsError, match="already exists"):
        atomic_write_text(target, "two", overwrite=False)
    assert target.read_text() == "one"


def test_written_files_are_readable_by_others(tmp_path):
    path = atomic_write_text(tmp_path / "f.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # not mkstemp's owner-only 0600
