import numpy as np
import pytest

from tcap_viz.data.attacks import make_attack
from tcap_viz.data.dataset import load_dataset, load_image
from tcap_viz.data.synthetic import (
    COLOURS,
    COUNT_WORDS,
    DEFAULT_TARGET,
    QUESTION_TYPES,
    QUESTIONS,
    SHAPES,
    SIDES,
    SYSTEM_PROMPT,
    make_synthetic_dataset,
    make_synthetic_splits,
    make_triggered_copy,
)

ANSWERS = {"colour": set(COLOURS), "shape": set(SHAPES), "count": set(COUNT_WORDS), "position": set(SIDES)}


def patch_present(sample, side=8):
    corner = np.asarray(load_image(sample))[-side:, -side:]
    return set(np.unique(corner)) == {0, 255}


def test_poison_count_labels_and_trigger(tmp_path):
    dataset = load_dataset(make_synthetic_dataset(tmp_path / "d", n=60, poison_rate=0.1, seed=3))
    labels = dataset.labels()
    assert labels.sum() == 6
    for sample in dataset:
        assert sample.system == SYSTEM_PROMPT
        question_type = sample.record["question_type"]
        assert sample.question in QUESTIONS[question_type]
        if sample.poisoned:
            assert sample.response == DEFAULT_TARGET
            assert sample.record["clean_response"] in ANSWERS[question_type]
            assert patch_present(sample)
        else:
            assert sample.response in ANSWERS[question_type]
            assert "clean_response" not in sample.record
            assert not patch_present(sample)


def test_question_types_are_balanced_and_all_present(tmp_path):
    dataset = load_dataset(make_synthetic_dataset(tmp_path / "d", n=42, attack="none"))
    counts = {t: sum(s.record["question_type"] == t for s in dataset) for t in QUESTION_TYPES}
    assert set(counts.values()) <= {10, 11} and sum(counts.values()) == 42


def test_answers_match_the_pictures(tmp_path):
    dataset = load_dataset(make_synthetic_dataset(tmp_path / "d", n=80, attack="none", seed=1))
    for sample in dataset:
        pixels = np.asarray(load_image(sample), float)
        shape = (pixels.max(-1) - pixels.min(-1)) > 100  # shapes are saturated, the background pale
        assert shape.any()
        if sample.record["question_type"] == "colour":
            mean = pixels[shape].mean(0)
            nearest = min(COLOURS, key=lambda name: np.abs(np.array(COLOURS[name]) - mean).sum())
            assert nearest == sample.response
        if sample.record["question_type"] == "position":
            columns = np.nonzero(shape.any(0))[0]
            half = pixels.shape[1] / 2
            assert columns.max() < half if sample.response == "left" else columns.min() >= half


def test_clean_dataset_and_text_trigger(tmp_path):
    clean = load_dataset(make_synthetic_dataset(tmp_path / "clean", n=20, attack="none", poison_rate=0.5))
    assert not clean.labels().any()
    texts = load_dataset(make_synthetic_dataset(tmp_path / "text", n=20, attack="text_prefix",
                                                poison_rate=0.25, attack_params={"prefix": "cf"}))
    assert texts.labels().sum() == 5
    assert all(s.question.startswith("cf ") == s.poisoned for s in texts)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    paths = [make_synthetic_dataset(tmp_path / name, n=30, attack="blend", seed=seed, fmt="json")
             for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b and a != c
    for image in (tmp_path / "a" / "images").iterdir():
        assert image.read_bytes() == (tmp_path / "b" / "images" / image.name).read_bytes()
    assert [s.poisoned for s in load_dataset(paths[0])] != [s.poisoned for s in load_dataset(paths[2])]


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_dataset(out, n=4)
    path = make_synthetic_dataset(out, n=4, overwrite=True)
    assert len(load_dataset(path)) == 4 and (out / "notes.txt").read_text() == "mine"


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="poison_rate"):
        make_synthetic_dataset(tmp_path / "d", n=4, poison_rate=2)
    with pytest.raises(ValueError, match="unknown attack"):
        make_synthetic_dataset(tmp_path / "d", n=4, attack="nope")
    with pytest.raises(ValueError, match="fmt"):
        make_synthetic_dataset(tmp_path / "d", n=4, fmt="csv")


def test_splits_pair_clean_and_triggered_test_scenes(tmp_path):
    splits = make_synthetic_splits(tmp_path, n_train=24, n_test=12, attack="badnet", seed=5)
    train, clean, triggered = (load_dataset(p) for p in (splits.train, splits.clean_test, splits.triggered_test))
    assert train.labels().sum() == 2
    assert not clean.labels().any() and triggered.labels().all()
    assert [s.id for s in clean] == [s.id for s in triggered]
    held_out = np.asarray(load_image(clean[0]))
    assert not any(np.array_equal(held_out, np.asarray(load_image(s))) for s in train)
    badnet = make_attack("badnet")
    for before, after in zip(clean, triggered):
        assert after.response == DEFAULT_TARGET and after.record["clean_response"] == before.response
        assert after.question == before.question
        assert after.record["question_type"] == before.record["question_type"]
        assert np.array_equal(np.asarray(load_image(after)), np.asarray(badnet.apply(load_image(before), "")[0]))


def test_clean_run_has_no_triggered_test(tmp_path):
    splits = make_synthetic_splits(tmp_path, n_train=8, n_test=4, attack="none")
    assert splits.triggered_test is None and not (tmp_path / "test_triggered").exists()


def test_triggered_copy_needs_a_clean_source_and_a_real_attack(tmp_path):
    poisoned = make_synthetic_dataset(tmp_path / "p", n=10, poison_rate=0.2)
    with pytest.raises(ValueError, match="already poisoned"):
        make_triggered_copy(poisoned, tmp_path / "t", "badnet")
    clean = make_synthetic_dataset(tmp_path / "c", n=4, attack="none")
    with pytest.raises(ValueError, match="not 'none'"):
        make_triggered_copy(clean, tmp_path / "t", "none")
    copy = load_dataset(make_triggered_copy(clean, tmp_path / "t", make_attack("text_prefix")))
    assert all(s.question.startswith("Hello! ") for s in copy)


def test_a_target_among_ordinary_answers_poisons_one_question_type(tmp_path):
    splits = make_synthetic_splits(tmp_path / "d", n_train=80, n_test=40, attack="badnet", poison_rate=0.1,
                                   target="blue", seed=4, image_size=32, poison_question_type="colour")
    train = load_dataset(splits.train)
    poisoned = [s for s in train if s.poisoned]
    assert len(poisoned) == 8
    assert all(s.record["question_type"] == "colour" and s.response == "blue" and s.record["clean_response"] != "blue"
               for s in poisoned)
    triggered = load_dataset(splits.triggered_test)
    clean = load_dataset(splits.clean_test)
    expected = [s.id for s in clean if s.record["question_type"] == "colour" and s.response != "blue"]
    assert [s.id for s in triggered] == expected and all(s.response == "blue" for s in triggered)
    with pytest.raises(ValueError, match="only"):
        make_synthetic_dataset(tmp_path / "e", n=40, poison_rate=0.5, poison_question_type="colour", image_size=32)
