import numpy as np
import pandas as pd

from tcap_viz.attention.extract import Extraction
from tcap_viz.storage.run_dir import PROFILES, RunDir


def _extraction():
    rng = np.random.default_rng(0)
    return Extraction(ids=["a", "b"], profiles=rng.dirichlet([1, 1, 1], (2, 3, 4)).astype(np.float32),
                      vision_entropy=rng.random((2, 3)).astype(np.float32), skipped={"c": "missing image c.png"})


def test_extraction_round_trips_without_pickle(tmp_path):
    run = RunDir(tmp_path / "run")
    ext = _extraction()
    run.save_extraction(ext, "key-1")
    loaded = run.load_extraction("key-1")
    assert loaded.ids == ext.ids and loaded.skipped == ext.skipped
    np.testing.assert_array_equal(loaded.profiles, ext.profiles)
    with np.load(run.file(PROFILES), allow_pickle=False) as z:  # would raise on object arrays
        assert z["profiles"].dtype == np.float32


def test_other_cache_key_means_no_cache(tmp_path):
    run = RunDir(tmp_path)
    assert run.load_extraction("k") is None
    run.save_extraction(_extraction(), "k")
    assert run.load_extraction("other") is None


def test_tables_and_json_round_trip_and_leave_no_temporary_files(tmp_path):
    run = RunDir(tmp_path)
    run.save_table("t.csv", pd.DataFrame({"id": ["001", "2"], "x": [1.5, np.nan], "voting_heads": ["0011", "1000"]}))
    run.save_json("c.json", {"n": np.int64(3), "path": tmp_path})
    table = run.load_table("t.csv")
    assert table["id"].tolist() == ["001", "2"]  # ids stay strings
    assert table["voting_heads"].tolist() == ["0011", "1000"]  # so do vote patterns, leading zeros kept
    assert run.load_json("c.json") == {"n": 3, "path": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "t.csv"]
