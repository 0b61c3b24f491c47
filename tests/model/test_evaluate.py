from tcap_viz.data import make_synthetic_splits
from tcap_viz.model.evaluate import model_quality


def test_model_quality_scores_clean_and_triggered_splits(tmp_path, tiny_adapter):
    splits = make_synthetic_splits(tmp_path / "d", n_train=8, n_test=6, attack="text_prefix", poison_rate=0.25,
                                   image_size=32)
    quality = model_quality(tiny_adapter, splits.train.parent.parent)
    assert set(quality) == {"clean_accuracy", "asr"} and all(0 <= v <= 1 for v in quality.values())
    clean = make_synthetic_splits(tmp_path / "c", n_train=8, n_test=6, attack="none", image_size=32)
    assert set(model_quality(tiny_adapter, clean.train.parent.parent)) == {"clean_accuracy"}
