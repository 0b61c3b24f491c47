import json

import numpy as np
from sklearn.metrics import roc_auc_score

from tcap_viz.attention.extract import extract_profiles
from tcap_viz.data import load_dataset, make_synthetic_dataset
from tcap_viz.model.adapter import MLLMAdapter


def test_shares_sum_to_one_and_cover_all_samples(tiny_adapter, tiny_dataset, tiny_spec):
    ext = extract_profiles(tiny_adapter, list(tiny_dataset), batch_size=8, show_progress=False)
    assert ext.ids == [s.id for s in tiny_dataset] and not ext.skipped
    assert ext.profiles.shape == (len(tiny_dataset), tiny_spec.text_layers, tiny_spec.text_heads, 3)
    np.testing.assert_allclose(ext.profiles.sum(-1), 1.0, atol=1e-5)
    assert (ext.profiles > 0).all()
    assert ext.vision_entropy.shape == (len(tiny_dataset), tiny_spec.text_layers)
    assert (ext.vision_entropy <= np.log(tiny_spec.image_tokens) + 1e-4).all()


def test_batch_size_does_not_change_profiles(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)[:9]
    one = extract_profiles(tiny_adapter, samples, batch_size=1, show_progress=False)
    many = extract_profiles(tiny_adapter, samples, batch_size=9, show_progress=False)
    np.testing.assert_allclose(one.profiles, many.profiles, atol=1e-5)


def test_bad_samples_are_skipped_with_a_reason_and_the_scan_goes_on(tiny_adapter, tiny_data_path, tmp_path):
    lines = tiny_data_path.read_text().splitlines()[:6]
    records = [json.loads(line) for line in lines]
    records[1]["image"] = "images/missing.png"
    records[3]["conversations"][0]["value"] = "<image>\n" + "word " * 600  # longer than the context
    for record in records:
        record["image"] = str(tiny_data_path.parent / record["image"])
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    samples = list(load_dataset(path, allow_outside=True))  # the images stay in the fixture's folder
    ext = extract_profiles(tiny_adapter, samples, batch_size=4, show_progress=False)
    assert set(ext.skipped) == {records[1]["id"], records[3]["id"]}
    assert "missing.png" in ext.skipped[records[1]["id"]]
    assert "tokens" in ext.skipped[records[3]["id"]]
    assert ext.ids == [r["id"] for i, r in enumerate(records) if i not in (1, 3)]


def test_untrained_model_gives_chance_level_separation(tiny_model_dir, tmp_path):
    """The leak test: rows that leak the label would separate poisons even without training."""
    data = load_dataset(make_synthetic_dataset(tmp_path, n=160, attack="badnet", poison_rate=0.25, seed=11,
                                               image_size=32))
    ext = extract_profiles(MLLMAdapter.load(tiny_model_dir, device="cpu"), list(data), 32, show_progress=False)
    labels = data.labels()
    system = ext.profiles[..., 0].reshape(len(labels), -1)
    aurocs = np.array([roc_auc_score(labels, system[:, j]) for j in range(system.shape[1])])
    separation = np.abs(aurocs - 0.5)
    assert np.median(separation) < 0.12, aurocs
