"""Exports keep the original's format, sit beside it, never overwrite, and say what they removed."""

import json
import shutil

import pandas as pd
import pytest

from tcap_viz.data import load_dataset
from tcap_viz.storage.export import export_cleaned, removal_reasons


@pytest.fixture()
def dataset_copy(tiny_data_path, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(tiny_data_path.parent, folder)
    return load_dataset(folder / tiny_data_path.name)


def test_cleaned_file_is_the_original_minus_the_removed_records(dataset_copy):
    original_bytes = dataset_copy.path.read_bytes()
    remove = {dataset_copy[0].id: "confirmed poison", dataset_copy[3].id: "flagged, decision pending"}
    result = export_cleaned(dataset_copy, remove, {"run": "r1", "threshold": 0.5})
    assert result.data_path.parent == dataset_copy.path.parent and result.data_path.suffix == dataset_copy.path.suffix
    assert dataset_copy.path.read_bytes() == original_bytes
    cleaned = load_dataset(result.data_path)  # its images resolve from the same folder
    assert [s.id for s in cleaned] == [s.id for s in dataset_copy if s.id not in remove]
    assert [s.record for s in cleaned] == [s.record for s in dataset_copy if s.id not in remove]
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["run"] == "r1" and manifest["kept"] == len(dataset_copy) - 2
    assert {r["id"]: r["reason"] for r in manifest["removed"]} == remove
    assert result.kept == len(dataset_copy) - 2 and result.removed == 2


def test_an_export_never_overwrites(dataset_copy, tmp_path):
    out = tmp_path / "clean.jsonl"
    export_cleaned(dataset_copy, {}, {}, out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        export_cleaned(dataset_copy, {dataset_copy[0].id: "x"}, {}, out)
    assert out.read_bytes() == before
    with pytest.raises(FileExistsError, match="original"):
        export_cleaned(dataset_copy, {}, {}, dataset_copy.path)


def test_unknown_ids_are_refused(dataset_copy):
    with pytest.raises(KeyError, match="nope"):
        export_cleaned(dataset_copy, {"nope": "x"}, {})


def test_rules_decide_what_is_removed():
    table = pd.DataFrame({"id": ["a", "b", "c", "d", "e"],
                          "flagged": [True, True, True, False, True],
                          "decision": ["poison", "clean", "unsure", "poison", "pending"]})
    assert set(removal_reasons(table, "confirmed")) == {"a", "d"}
    assert set(removal_reasons(table, "flagged_not_rejected")) == {"a", "c", "d", "e"}
    with pytest.raises(ValueError, match="rule"):
        removal_reasons(table, "everything")


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_export_leaves_neither_file_nor_a_temporary(dataset_copy, monkeypatch):
    import os

    from tcap_viz import atomic

    before = _files(dataset_copy.path.parent)
    renames = []
    replace = os.replace

    def fail_second(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_second)
    with pytest.raises(OSError, match="disk full"):
        export_cleaned(dataset_copy, {dataset_copy[0].id: "x"}, {"run": "r"})
    assert _files(dataset_copy.path.parent) == before
    assert str(renames[0]).endswith(".manifest.json")  # the manifest goes first: data never appears alone


def test_files_are_synced_before_they_are_renamed(dataset_copy, monkeypatch):
    from tcap_viz import atomic

    events = []
    sync, replace = atomic._fsync, atomic.os.replace
    monkeypatch.setattr(atomic, "_fsync", lambda path: events.append(("sync", str(path))) or sync(path))
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: events.append(("rename", str(src))) or replace(src, dst))
    export_cleaned(dataset_copy, {}, {})
    renamed = [path for kind, path in events if kind == "rename"]
    assert len(renamed) == 2
    for path in renamed:
        assert events.index(("sync", path)) < events.index(("rename", path))


def test_a_killed_exports_temporary_is_removed_by_the_next(dataset_copy):
    import os
    import time

    folder, stem = dataset_copy.path.parent, dataset_copy.path.stem
    dead = folder / f".{stem}.cleaned-20261101T000000Z.jsonl.abc123.tmp"
    dead.write_text("half a dataset")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    alive = folder / f".{stem}.cleaned-20261128T000000Z.jsonl.def456.tmp"  # another export writing now
    alive.write_text("being written")
    export_cleaned(dataset_copy, {}, {})
    assert not dead.exists() and alive.exists()


def test_the_same_export_twice_is_written_once(dataset_copy):
    """Repeated clicks or a retry cannot fill the disk: an unchanged export returns the existing files."""
    remove = {dataset_copy[0].id: "confirmed poison"}
    first = export_cleaned(dataset_copy, remove, {"rule": "confirmed", "threshold": 0.5})
    again = export_cleaned(dataset_copy, remove, {"rule": "confirmed", "threshold": 0.5})
    assert again.data_path == first.data_path and again.manifest_path == first.manifest_path
    changed = export_cleaned(dataset_copy, {**remove, dataset_copy[1].id: "confirmed poison"},
                             {"rule": "confirmed", "threshold": 0.5})
    assert changed.data_path != first.data_path and changed.removed == 2
    assert len(list(dataset_copy.path.parent.glob("*.cleaned-*.manifest.json"))) == 2
