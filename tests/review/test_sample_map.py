"""The map is cached under the heads and samples it was made from."""

import numpy as np

from tcap_viz.review import sample_map as sm
from tcap_viz.storage.run_dir import RunDir


def test_features_are_the_selected_heads_shares():
    profiles = np.random.default_rng(0).random((5, 2, 3, 3))
    features = sm.map_features(profiles, [(1, 2), (0, 0)])
    np.testing.assert_array_equal(features, np.concatenate([profiles[:, 1, 2], profiles[:, 0, 0]], axis=1))
    assert sm.map_features(profiles, []).shape == (5, 18)


def test_map_is_computed_once_per_heads(tmp_path, monkeypatch):
    from tcap_viz.attention.extract import Extraction

    extraction = Extraction(ids=[f"s{i}" for i in range(30)],
                            profiles=np.random.default_rng(1).random((30, 2, 2, 3)).astype(np.float32),
                            vision_entropy=np.zeros((30, 2), np.float32))
    calls = []

    def fake_embed(features, n_neighbors, random_state):
        calls.append(features.shape)
        return features[:, :2].astype(np.float32)

    monkeypatch.setattr(sm, "_embed", fake_embed)
    run = RunDir(tmp_path)
    first = sm.sample_map(run, extraction, [(0, 1)])
    again = sm.sample_map(run, extraction, [(0, 1)])
    assert calls == [(30, 3)] and list(first["id"]) == extraction.ids
    np.testing.assert_array_equal(first[["x", "y"]], again[["x", "y"]])
    sm.sample_map(run, extraction, [(1, 1), (0, 0)])
    assert calls == [(30, 3), (30, 6)]


def test_umap_runs_on_real_features(tmp_path):
    from tcap_viz.attention.extract import Extraction

    rng = np.random.default_rng(2)
    profiles = np.concatenate([rng.normal(0.2, 0.01, (40, 1, 1, 3)), rng.normal(0.8, 0.01, (10, 1, 1, 3))])
    extraction = Extraction(ids=[str(i) for i in range(50)], profiles=profiles.astype(np.float32),
                            vision_entropy=np.zeros((50, 1), np.float32))
    xy = sm.sample_map(RunDir(tmp_path), extraction, [(0, 0)])[["x", "y"]].to_numpy()
    centre_a, centre_b = xy[:40].mean(0), xy[40:].mean(0)
    spread = max(xy[:40].std(0).max(), xy[40:].std(0).max())
    assert np.linalg.norm(centre_a - centre_b) > 2 * spread  # the two groups are two islands
