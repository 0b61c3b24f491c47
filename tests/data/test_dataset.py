import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcap_viz.data.dataset import (
    Dataset,
    DatasetError,
    SampleError,
    load_dataset,
    load_image,
    make_record,
    write_dataset,
)


def record(sample_id="a", **changes):
    base = make_record(sample_id, f"images/{sample_id}.png", "What colour is it?", "red",
                       system="Be brief.", poisoned=False, question_type="colour")
    base.update(changes)
    return base


def write_raw(path: Path, records) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))
    return path


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "images" / f"{name}.png")
    return tmp_path


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_round_trip_keeps_every_field(folder, suffix):
    odd_text = make_record("c", "images/c.png", "Qu\u2028oi ?", "é\r\nà")["conversations"]
    records = [record("a"), record("b", poisoned=True), record("c", extra={"k": [1, 2]}, conversations=odd_text)]
    path = write_dataset(records, folder / f"data{suffix}")
    dataset = load_dataset(path)
    assert [s.record for s in dataset] == records
    first = dataset[0]
    assert (first.index, first.id, first.system, first.question, first.response, first.poisoned) == (
        0, "a", "Be brief.", "What colour is it?", "red", False)
    assert first.image_path == folder / "images" / "a.png"
    assert load_image(first).size == (8, 8)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_writing_samples_elsewhere_repoints_their_images(folder, suffix):
    dataset = load_dataset(write_dataset([record("a"), record("b")], folder / "data.jsonl"))
    moved = write_dataset([s for s in dataset if s.id == "b"], folder / "export" / f"clean{suffix}")
    reloaded = load_dataset(moved)
    assert len(reloaded) == 1
    assert reloaded[0].image_path == dataset.by_id("b").image_path
    assert reloaded[0].record["image"] == "../images/b.png"


def test_dataset_access_and_labels(folder):
    dataset = load_dataset(write_raw(folder / "d.jsonl", [record("a"), record("b", poisoned=True)]))
    assert len(dataset) == 2 and [s.id for s in dataset] == ["a", "b"]
    assert dataset.by_id("b").poisoned is True
    with pytest.raises(KeyError, match="'zz'"):
        dataset.by_id("zz")
    assert dataset.has_ground_truth
    assert dataset.labels().tolist() == [False, True]
    assert dataset.labels().dtype == np.bool_


def test_labels_need_every_sample_labelled(folder):
    unlabelled = record("b")
    del unlabelled["poisoned"]
    dataset = load_dataset(write_raw(folder / "d.jsonl", [record("a"), unlabelled, record("c", poisoned=None)]))
    assert not dataset.has_ground_truth
    assert dataset.by_id("c").poisoned is None
    with pytest.raises(DatasetError, match="ground truth"):
        dataset.labels()


def test_integer_ids_blank_lines_and_optional_fields(folder):
    minimal = {"id": 7, "image": "images/a.png",
               "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]}
    path = folder / "d.jsonl"
    path.write_text("\n" + json.dumps(minimal) + "\n   \n")
    sample = load_dataset(path)[0]
    assert (sample.id, sample.system, sample.poisoned, sample.question) == ("7", None, None, "Q?")


def test_first_human_gpt_exchange_is_used_and_placeholder_is_optional(folder):
    turns = [{"from": "gpt", "value": "Hi."}, {"from": "human", "value": "  Describe it. "},
             {"from": "gpt", "value": "A square."}, {"from": "human", "value": "More?"}, {"from": "gpt", "value": "No."}]
    sample = load_dataset(write_raw(folder / "d.json", [record("a", conversations=turns)]))[0]
    assert (sample.question, sample.response) == ("Describe it.", "A square.")


BAD_RECORDS = [
    ({"id": None}, "id", "missing"),
    ({"id": ["x"]}, "id", "not a string or integer"),
    ({"image": ""}, "image", "non-empty string"),
    ({"image": 3}, "image", "non-empty string"),
    ({"system": 5}, "system", "not a string"),
    ({"poisoned": "yes"}, "poisoned", "true/false"),
    ({"conversations": "hi"}, "conversations", "not a list"),
    ({"conversations": [{"from": "human"}]}, "conversations[0]", "'from' and 'value'"),
    ({"conversations": [{"from": "human", "value": "Q"}]}, "conversations", "no human turn directly followed"),
    ({"conversations": [{"from": "human", "value": "<image> <image> Q"}, {"from": "gpt", "value": "A"}]},
     "conversations[0].value", "2 <image> placeholders"),
]


@pytest.mark.parametrize(("changes", "field", "problem"), BAD_RECORDS)
@pytest.mark.parametrize(("suffix", "where"), [(".jsonl", "line 2"), (".json", "index 1")])
def test_each_problem_names_file_location_and_field(folder, changes, field, problem, suffix, where):
    path = write_raw(folder / f"bad{suffix}", [record("a"), record("b", **changes)])
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"bad{suffix} {where}, field '{field}': " in message
    assert problem in message
    assert caught.value.problems and all("; " in p for p in caught.value.problems)  # each says what to do


def test_duplicate_ids_name_both_lines(folder):
    path = write_raw(folder / "d.jsonl", [record("a"), record("b"), record("a")])
    with pytest.raises(DatasetError, match=r"line 3, field 'id': 'a' is already used at line 1"):
        load_dataset(path)


def test_duplicate_ids_after_int_to_str(folder):
    path = write_raw(folder / "d.json", [record(1), record("1")])
    with pytest.raises(DatasetError, match=r"index 1, field 'id': '1' is already used at index 0"):
        load_dataset(path)


def test_problems_are_collected_and_capped(folder):
    path = folder / "d.jsonl"
    lines = [json.dumps(record(f"r{i}", image="")) for i in range(25)]
    lines[3] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert "25 problem(s)" in message
    assert "line 4, field '(record)': invalid JSON" in message
    assert "line 1, field 'image'" in message and "line 2, field 'image'" in message
    assert "5 more not shown" in message
    assert len(caught.value.problems) == 20


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("d.json", '{"id": 1}', "not an array"),
    ("d.json", "[1,\n  2", "line 2"),
    ("d.jsonl", "[1, 2]\n", "line 1, field '(record)': a JSON array, not an object"),
    ("d.jsonl", "\n\n", "no records"),
    ("d.csv", "id,image\n", "unsupported file type"),
])
def test_file_level_problems(folder, name, content, problem):
    path = folder / name
    path.write_text(content)
    with pytest.raises(DatasetError, match=re.escape(problem)) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value)


def test_missing_file(folder):
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(folder / "nope.jsonl")


def test_missing_or_broken_image_only_fails_that_sample(folder):
    (folder / "images" / "broken.png").write_text("not a png")
    path = write_raw(folder / "d.jsonl", [record("a"), record("gone", image="images/gone.png"),
                                          record("bad", image="images/broken.png")])
    dataset = load_dataset(path)
    assert len(dataset) == 3
    load_image(dataset.by_id("a"))
    with pytest.raises(SampleError, match=r"sample 'gone': image file .*gone\.png is missing") as caught:
        load_image(dataset.by_id("gone"))
    assert caught.value.sample_id == "gone"
    with pytest.raises(SampleError, match=r"sample 'bad': image file .*broken\.png cannot be read"):
        load_image(dataset.by_id("bad"))


def test_load_image_gives_rgb(folder):
    Image.new("L", (4, 4), 90).save(folder / "images" / "a.png")
    image = load_image(load_dataset(write_raw(folder / "d.jsonl", [record("a")]))[0])
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (90, 90, 90)


def test_write_refuses_to_overwrite_unless_asked(folder):
    path = write_dataset([record("a")], folder / "d.jsonl")
    before = path.read_text()
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset([record("b")], path)
    assert path.read_text() == before
    write_dataset([record("b")], path, overwrite=True)
    assert load_dataset(path)[0].id == "b"
    assert sorted(p.name for p in folder.iterdir()) == ["d.jsonl", "images"]  # no temp files left


def test_write_rejects_empty_and_unknown_items(folder):
    with pytest.raises(ValueError, match="nothing to write"):
        write_dataset([], folder / "d.jsonl")
    with pytest.raises(TypeError, match="str"):
        write_dataset(["a"], folder / "d.jsonl")
    with pytest.raises(DatasetError, match="unsupported file type"):
        write_dataset([record("a")], folder / "d.txt")


def test_dataset_rejects_duplicate_ids_when_built_directly(folder):
    sample = load_dataset(write_raw(folder / "d.jsonl", [record("a")]))[0]
    with pytest.raises(DatasetError, match="'a' is used twice"):
        Dataset(folder / "d.jsonl", (sample, sample))


def test_images_outside_the_dataset_folder_are_refused_unless_allowed(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(secret)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(data / "images" / "inside.png")
    (data / "images" / "link.png").symlink_to(secret)
    path = write_raw(data / "d.jsonl", [record("up", image="../secret.png"), record("abs", image=str(secret)),
                                        record("link", image="images/link.png"),
                                        record("in", image="images/inside.png")])
    dataset = load_dataset(path)
    load_image(dataset.by_id("in"))
    for sample_id in ("up", "abs", "link"):
        with pytest.raises(SampleError, match="outside the dataset's folder.*--allow-outside"):
            load_image(dataset.by_id(sample_id))
    trusted = load_dataset(path, allow_outside=True)
    assert all(load_image(trusted.by_id(i)).getpixel((0, 0)) == (1, 2, 3) for i in ("up", "abs", "link"))


def test_only_regular_files_are_read(folder):
    import os

    os.mkfifo(folder / "images" / "pipe.png")  # opening it would block for ever
    (folder / "images" / "dir.png").mkdir()
    dataset = load_dataset(write_raw(folder / "d.jsonl", [record("p", image="images/pipe.png"),
                                                         record("d", image="images/dir.png")]))
    for sample_id in ("p", "d"):
        with pytest.raises(SampleError, match="not a regular file"):
            load_image(dataset.by_id(sample_id))


def test_huge_images_are_skipped_and_large_ones_downscaled(folder, monkeypatch):
    from tcap_viz.data import dataset as module

    Image.new("RGB", (300, 200), (5, 5, 5)).save(folder / "images" / "a.png")
    sample = load_dataset(write_raw(folder / "d.jsonl", [record("a")]))[0]
    monkeypatch.setattr(module, "MAX_IMAGE_SIDE", 150)
    assert load_image(sample).size == (150, 100)  # the aspect is kept
    monkeypatch.setattr(module, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(SampleError, match="300 x 200 pixels, more than the 50,000.*downscale it"):
        load_image(sample)


def test_a_byte_order_mark_is_accepted(folder):
    for suffix in (".jsonl", ".json"):
        path = write_raw(folder / f"d{suffix}", [record("a"), record("b")])
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Notepad saves "UTF-8"
        assert [s.id for s in load_dataset(path)] == ["a", "b"]


def test_bytes_that_are_not_utf8_are_located_by_line_and_column(folder):
    path = folder / "d.jsonl"
    path.write_bytes(json.dumps(record("a")).encode() + b'\n{"id": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match=r"line 2, column 12: byte 0xe9 is not UTF-8.*save the file as UTF-8"):
        load_dataset(path)


def test_a_folder_given_as_the_dataset_says_so(folder):
    with pytest.raises(DatasetError, match="is a folder; give the dataset file"):
        load_dataset(_folder_named_like_a_dataset(folder))


def _folder_named_like_a_dataset(folder):
    path = folder / "data.jsonl"
    path.mkdir()
    return path
