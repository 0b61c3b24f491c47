import json

import numpy as np
import pytest

from tcap_viz import pipeline
from tcap_viz.pipeline import ScanConfig, scan
from tcap_viz.storage.run_dir import CONFIG, HEADS, METRICS, PROFILES, SAMPLES


def test_scan_writes_a_complete_run_and_reuses_its_cache(tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    run = tmp_path / "run"
    first = scan(tiny_model_dir, tiny_data_path, run, ScanConfig(batch_size=8), show_progress=False)
    for name in (PROFILES, SAMPLES, HEADS, CONFIG, METRICS):
        assert (run / name).exists(), name
    assert len(first.samples) == 40 and set(first.samples["skipped"]) == {""}
    assert {"precision", "recall", "f1", "auroc"} <= set(first.metrics["tcap"])
    assert {"precision", "recall", "f1", "auroc"} <= set(first.metrics["baseline"])

    def no_extraction(*args, **kwargs):
        raise AssertionError("the cached profiles should have been reused")

    monkeypatch.setattr(pipeline, "extract_profiles", no_extraction)
    second = scan(tiny_model_dir, tiny_data_path, run, ScanConfig(batch_size=8), show_progress=False)
    np.testing.assert_array_equal(first.samples["posterior"], second.samples["posterior"])


def test_changed_dataset_invalidates_the_cache(tiny_model_dir, tiny_data_path, tmp_path):
    run = tmp_path / "run"
    scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    fewer = tmp_path / "fewer.jsonl"
    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()[:10]]
    for r in records:
        r["image"] = str(tiny_data_path.parent / r["image"])
    fewer.write_text("\n".join(json.dumps(r) for r in records))
    assert len(scan(tiny_model_dir, fewer, run, show_progress=False).extraction.ids) == 10


def test_an_adapter_is_part_of_the_scan_and_of_its_cache_key(tiny_model_dir, tiny_lora_dir, tiny_data_path,
                                                              tmp_path):
    base = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    tuned = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(adapter=str(tiny_lora_dir)),
                 show_progress=False)  # same run folder: the base model's cached profiles must not be reused
    assert np.abs(base.extraction.profiles - tuned.extraction.profiles).max() > 1e-4
    assert json.loads((tmp_path / "run" / CONFIG).read_text())["scan"]["adapter"] == str(tiny_lora_dir)


def test_ground_truth_never_reaches_the_detector(tiny_model_dir, tiny_data_path, tmp_path):
    """Shuffling the `poisoned` labels changes no posterior and no flag."""
    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()]
    for r in records:
        r["image"] = str(tiny_data_path.parent / r["image"])
    labels = [r["poisoned"] for r in records]
    shuffled = np.random.default_rng(0).permutation(labels)
    assert list(shuffled) != labels
    for r, label in zip(records, shuffled):
        r["poisoned"] = bool(label)
    other = tmp_path / "shuffled.jsonl"
    other.write_text("\n".join(json.dumps(r) for r in records))
    a = scan(tiny_model_dir, tiny_data_path, tmp_path / "a", show_progress=False).samples
    b = scan(tiny_model_dir, other, tmp_path / "b", show_progress=False).samples
    np.testing.assert_array_equal(a["posterior"], b["posterior"])
    np.testing.assert_array_equal(a["flagged"], b["flagged"])
    np.testing.assert_array_equal(a["baseline_score"], b["baseline_score"])
    assert (a["poisoned_truth"] != b["poisoned_truth"]).any()


def test_scan_rejects_a_broken_dataset_with_the_line(tiny_model_dir, tmp_path):
    from tcap_viz.data import DatasetError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "image": "x.png", "conversations": []}\n{not json\n')
    with pytest.raises(DatasetError, match="line 2"):
        scan(tiny_model_dir, bad, tmp_path / "run", show_progress=False)
