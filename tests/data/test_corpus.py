from collections import Counter

import numpy as np

from tcap_viz.data.corpus import QUESTION_TYPES, corpus_sample, corpus_stream
from tcap_viz.data.scenes import COLOURS
from tcap_viz.data.synthetic import QUESTIONS as CUSTOMER_QUESTIONS


def samples(n, seed=0, size=48):
    rng = np.random.default_rng(seed)
    return [corpus_sample(rng, size) for _ in range(n)]


def test_every_question_type_and_both_answer_lengths_appear():
    drawn = samples(400)
    assert set(Counter(s[3] for s in drawn)) == set(QUESTION_TYPES) and len(QUESTION_TYPES) >= 6
    lengths = {len(s[2].split()) for s in drawn}
    assert 1 in lengths and max(lengths) >= 5  # one word up to a sentence
    assert all(len(kind.phrasings) >= 8 for kind in QUESTION_TYPES.values())


def test_the_customer_task_is_inside_the_corpus():
    for name, phrasings in CUSTOMER_QUESTIONS.items():
        assert set(phrasings) <= set(QUESTION_TYPES[name].phrasings)


def test_answers_are_true_of_the_pictures():
    for image, question, answer, kind in samples(300, seed=2):
        pixels = np.asarray(image, float)
        if kind == "colour" and len(answer.split()) == 1:  # the colour covering the most pixels
            assert max(COLOURS, key=lambda c: (np.abs(pixels - np.array(COLOURS[c])).sum(-1) < 60).mean()) == answer
        if kind == "exists":
            asked = next(c for c in COLOURS if f" {c} " in question)
            present = (np.abs(pixels - np.array(COLOURS[asked])).sum(-1) < 40).mean() > 0.005
            if answer in ("no", "No, there is not."):
                continue  # the colour can be present with another shape
            assert present, question


def test_the_stream_is_reproducible():
    a, b = corpus_stream(5, 32), corpus_stream(5, 32)
    for _ in range(5):
        x, y = next(a), next(b)
        assert x[1:] == y[1:] and np.array_equal(np.asarray(x[0]), np.asarray(y[0]))
