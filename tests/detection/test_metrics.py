import math

import pytest

from tcap_viz.detection.metrics import detection_metrics


def test_counts_and_ratios():
    m = detection_metrics([1, 1, 0, 0, 0], [1, 0, 1, 0, 0], scores=[0.9, 0.4, 0.6, 0.1, 0.2])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 2)
    assert m["precision"] == m["recall"] == m["f1"] == 0.5
    assert m["auroc"] == pytest.approx(5 / 6)
    assert (m["n"], m["n_true"], m["n_flagged"], m["flagged_fraction"]) == (5, 2, 2, 0.4)


def test_empty_flag_set_has_precision_zero():
    m = detection_metrics([1, 0, 0], [0, 0, 0], scores=[0.5, 0.1, 0.2])
    assert m["precision"] == m["recall"] == m["f1"] == 0.0
    assert m["auroc"] == 1.0


def test_auroc_is_nan_without_usable_scores_or_with_one_class():
    assert math.isnan(detection_metrics([1, 0], [1, 0])["auroc"])
    assert math.isnan(detection_metrics([1, 0], [0, 0], scores=[float("nan")] * 2)["auroc"])
    m = detection_metrics([0, 0, 0], [0, 1, 0], scores=[0.1, 0.9, 0.2])
    assert math.isnan(m["auroc"])
    assert m["recall"] == 0.0 and m["fp"] == 1
