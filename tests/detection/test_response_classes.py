import numpy as np

from tcap_viz.detection import response_classes


def test_common_responses_are_their_own_class_and_rare_ones_are_pooled():
    responses = ["red"] * 25 + [" Red "] * 5 + ["blue"] * 20 + [f"free text {i}" for i in range(20)] + ["odd"] * 3
    classes = response_classes(responses, min_class_size=20)
    assert len(set(classes[:30])) == 1  # trimmed and case-folded: one class
    assert classes[30] != classes[0] and len(set(classes[30:50])) == 1
    pooled = classes[50:]
    assert len(set(pooled)) == 1 and pooled[0] not in (classes[0], classes[30]) and pooled[0] >= 0


def test_a_pool_too_small_to_analyse_is_left_out():
    classes = response_classes(["red"] * 30 + ["a", "b", "c"], min_class_size=20)
    np.testing.assert_array_equal(classes[30:], -1)
    assert (classes[:30] == 0).all()
