import pytest

from tcap_viz.data import make_synthetic_splits
from tcap_viz.model.evaluate import model_quality


def test_model_quality_scores_clean_and_triggered_splits(tmp_path, tiny_adapter):
    splits = make_synthetic_splits(tmp_path / "d", n_train=8, n_test=6, attack="text_prefix", poison_rate=0.25,
                                   image_size=32)
    quality = model_quality(tiny_adapter, splits.train.parent.parent)
    assert set(quality) == {"clean_accuracy", "asr"} and all(0 <= v <= 1 for v in quality.values())
    clean = make_synthetic_splits(tmp_path / "c", n_train=8, n_test=6, attack="none", image_size=32)
    assert set(model_quality(tiny_adapter, clean.train.parent.parent)) == {"clean_accuracy"}


def test_response_logprob_is_the_models_own_loss_per_sample(tmp_path, tiny_adapter, tiny_dataset):
    import numpy as np
    import torch

    from tcap_viz.data import load_dataset, load_image
    from tcap_viz.model.evaluate import response_logprob

    samples = list(tiny_dataset)[:5]
    together = response_logprob(tiny_adapter, samples, batch_size=4)
    alone = response_logprob(tiny_adapter, samples, batch_size=1)
    np.testing.assert_allclose(together, alone, atol=1e-4)  # padding changes nothing
    s = samples[0]
    batch = tiny_adapter.encode([s.question], [s.system], [load_image(s)], [s.response])
    with torch.no_grad():
        loss = tiny_adapter.model(**batch.inputs, labels=batch.labels).loss
    assert together[0] == pytest.approx(-float(loss), abs=1e-4)
    assert (together < 0).all()
    records = [dict(s.record, image=str(s.image_path)) for s in samples[:2]]
    records[1]["image"] = str(tmp_path / "gone.png")
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(__import__("json").dumps(r) for r in records))
    scores = response_logprob(tiny_adapter, list(load_dataset(path, allow_outside=True)))
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
