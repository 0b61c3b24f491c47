"""Image+text instruction datasets in the LLaVA conversation format.

A dataset file is a JSON array (`.json`) or JSON Lines (`.jsonl`) of records::

    {"id": "0001", "image": "images/0001.png", "system": "...",
     "conversations": [{"from": "human", "value": "<image>\\nWhat colour is the shape?"},
                       {"from": "gpt", "value": "red"}],
     "poisoned": false}

`image` is relative to the dataset file's folder. An image outside that folder (through `..`, an
absolute path or a symbolic link) is refused unless the dataset is loaded with `allow_outside=True`
(`--allow-outside`): a dataset from someone else must not make the app read any file it likes.
The data shipped with tcap-viz is trusted wherever the dataset file is (the demo's cleaned export
lives in its run folder and points back at the demo's images). `system` and
`poisoned` are optional; `poisoned` is ground truth used only for evaluation, never by the detector.
`null` for either counts as absent. Other fields are kept untouched in `Sample.record`.

Decisions worth knowing:
- Only the first human turn that is directly followed by a gpt turn is used: the detector reads
  the attention of the prompt that produces the first answer, so later turns play no part.
- The human text may hold at most one `<image>` placeholder. Without one the sample is still
  accepted and the image still attached (the model's chat template decides where it goes).
- Images are not opened when loading: a missing or broken image costs only its own sample,
  which is skipped later with the reason `load_image` gives. Only regular files are read (a pipe
  named `.png` would block a scan forever); an image over MAX_IMAGE_PIXELS is skipped, and one
  with a side over MAX_IMAGE_SIDE is downscaled on load (the models see a few hundred pixels).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tcap_viz.atomic import atomic_write_text
from tcap_viz.demo import DEMO_DIR

IMAGE_PLACEHOLDER = "<image>"
HUMAN = "human"
GPT = "gpt"
SUFFIXES = (".json", ".jsonl")
STANDARD_FIELDS = ("id", "image", "system", "conversations", "poisoned")
MAX_REPORTED_PROBLEMS = 20
#: Larger images are skipped: decoding 144 million pixels costs about 2 GB, and no model here needs them.
MAX_IMAGE_PIXELS = 40_000_000
#: The data shipped with tcap-viz: its images may be read from a dataset file anywhere.
SHIPPED_DATA = Path(os.path.realpath(DEMO_DIR))
#: Images are downscaled on load to this longest side (JPEGs are decoded at the reduced size).
MAX_IMAGE_SIDE = 2048


class DatasetError(ValueError):
    """The dataset file cannot be used; `problems` holds every located reason that was shown."""

    def __init__(self, message: str, problems: Iterable[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


class SampleError(ValueError):
    """One sample cannot be used; callers skip it and keep the message as the reason."""

    def __init__(self, message: str, sample_id: str):
        super().__init__(message)
        self.sample_id = sample_id


@dataclass(frozen=True)
class Sample:
    """One training example: what the model sees (system, image, question) and its answer."""

    index: int
    id: str
    image_path: Path
    system: str | None
    question: str
    response: str
    poisoned: bool | None
    record: dict[str, Any] = field(compare=False, repr=False)
    #: The folder the image must lie in (None: anywhere, when the dataset allows images outside it).
    root: Path | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, repr=False)
class Dataset:
    """The samples of one dataset file, in file order, addressable by position or id."""

    path: Path
    samples: tuple[Sample, ...]
    _by_id: dict[str, Sample] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", tuple(self.samples))
        by_id: dict[str, Sample] = {}
        for sample in self.samples:
            if sample.id in by_id:
                raise DatasetError(f"{self.path}: sample id {sample.id!r} is used twice; ids must be unique")
            by_id[sample.id] = sample
        object.__setattr__(self, "_by_id", by_id)

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, {len(self)} samples)"

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def by_id(self, sample_id: str) -> Sample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise KeyError(f"no sample with id {sample_id!r} in {self.path}") from None

    @property
    def has_ground_truth(self) -> bool:
        """Evaluation needs a label for every sample; a partly labelled file would bias it."""
        return bool(self.samples) and all(isinstance(s.poisoned, bool) for s in self.samples)

    def labels(self) -> np.ndarray:
        """Ground truth as a bool array in sample order (True = poisoned)."""
        if not self.has_ground_truth:
            raise DatasetError(
                f"{self.path}: not every record has a true/false 'poisoned' field, so there is no "
                "ground truth; evaluate on a labelled dataset (e.g. one from make_synthetic_dataset)"
            )
        return np.array([s.poisoned for s in self.samples], dtype=bool)


class _Problems:
    """Collects located problems so the user can fix a file in one pass instead of one per run."""

    def __init__(self, path: Path):
        self.path = path
        self.shown: list[str] = []
        self.count = 0

    def add(self, where: str, field_name: str, problem: str, fix: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append(f"{self.path.name} {where}, field {field_name!r}: {problem}; {fix}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        lines = [f"{self.path}: {self.count} problem(s) found; fix them and load the file again:"]
        lines += [f"- {problem}" for problem in self.shown]
        if self.count > len(self.shown):
            lines.append(f"- ... and {self.count - len(self.shown)} more not shown")
        raise DatasetError("\n".join(lines), self.shown)


def _json_kind(value: Any) -> str:
    kinds = {list: "array", dict: "object", str: "string", bool: "true/false", int: "number", float: "number"}
    return kinds.get(type(value), "null")


def _check_suffix(path: Path) -> None:
    if path.suffix not in SUFFIXES:
        raise DatasetError(
            f"{path}: unsupported file type {path.suffix!r}; use a .json file (JSON array of records) "
            "or a .jsonl file (one record per line)"
        )


def _read_entries(path: Path, problems: _Problems) -> Iterator[tuple[str, Any]]:
    """(location, parsed record) pairs, 'line N' for JSONL and 'index N' for JSON; lazy, so that
    problems are reported in file order."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder; give the dataset file inside it (.json or .jsonl)") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is accepted
    except UnicodeDecodeError as error:
        start = error.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise DatasetError(f"{path}, line {line}, column {column}: byte 0x{data[start]:02x} is not UTF-8 text; "
                           "save the file as UTF-8 (most editors: 'Save with encoding', UTF-8)") from None
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit in a string
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                problems.add(f"line {number}", "(record)", f"invalid JSON ({error.msg} at column {error.colno})",
                             "write one complete JSON object per line")
                continue
            yield f"line {number}", record
        return
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno} ({error.msg}); "
            "the file must be one JSON array of records"
        ) from None
    if not isinstance(records, list):
        raise DatasetError(
            f"{path}: the top level is a JSON {_json_kind(records)}, not an array; "
            "put the records in a JSON array, or use a .jsonl file with one record per line"
        )
    yield from ((f"index {index}", record) for index, record in enumerate(records))


def _first_exchange(turns: Any, where: str, problems: _Problems) -> tuple[str, str] | None:
    """The first human question and the gpt answer that follows it."""
    if not isinstance(turns, list):
        problems.add(where, "conversations", "missing or not a list",
                     'give a list of turns like [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]')
        return None
    for number, turn in enumerate(turns):
        if not (isinstance(turn, dict) and isinstance(turn.get("from"), str) and isinstance(turn.get("value"), str)):
            problems.add(where, f"conversations[{number}]", "not an object with string 'from' and 'value'",
                         'write each turn as {"from": "human" or "gpt", "value": "text"}')
            return None
    start = next((i for i in range(len(turns) - 1)
                  if turns[i]["from"] == HUMAN and turns[i + 1]["from"] == GPT), None)
    if start is None:
        problems.add(where, "conversations", "no human turn directly followed by a gpt turn",
                     "add the question as a 'human' turn and its answer as the next, 'gpt', turn")
        return None
    human = turns[start]["value"]
    placeholders = human.count(IMAGE_PLACEHOLDER)
    if placeholders > 1:
        problems.add(where, f"conversations[{start}].value", f"{placeholders} {IMAGE_PLACEHOLDER} placeholders",
                     f"a sample has one image: keep a single {IMAGE_PLACEHOLDER}")
        return None
    return human.replace(IMAGE_PLACEHOLDER, "").strip(), turns[start + 1]["value"]


def _parse_record(record: Any, index: int, where: str, folder: Path, problems: _Problems,
                  root: Path | None = None) -> Sample | None:
    if not isinstance(record, dict):
        problems.add(where, "(record)", f"a JSON {_json_kind(record)}, not an object",
                     'write each record as {"id": ..., "image": ..., "conversations": [...]}')
        return None
    found = problems.count
    sample_id = record.get("id")
    if sample_id is None or sample_id == "":
        problems.add(where, "id", "missing or empty", "give every record a unique id")
    elif isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)):
        problems.add(where, "id", f"{sample_id!r} is not a string or integer", "give every record a unique id")
    image = record.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.add(where, "image", "missing or not a non-empty string",
                     f"give the image file path, relative to {folder}")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        problems.add(where, "system", f"{system!r} is not a string", "give the system prompt as text or leave it out")
    poisoned = record.get("poisoned")
    if poisoned is not None and not isinstance(poisoned, bool):
        problems.add(where, "poisoned", f"{poisoned!r} is not true/false",
                     "use true or false (ground truth for evaluation), or leave it out")
    exchange = _first_exchange(record.get("conversations"), where, problems)
    if exchange is None or problems.count > found:
        return None
    return Sample(index=index, id=str(sample_id), image_path=Path(os.path.abspath(folder / image)),
                  system=system, question=exchange[0], response=exchange[1], poisoned=poisoned, record=record,
                  root=root)


def load_dataset(path: str | os.PathLike, allow_outside: bool = False) -> Dataset:
    """Read and validate a dataset file; every problem found is reported at once as a DatasetError.

    `allow_outside`: read images outside the file's folder too (only for datasets you trust)."""
    path = Path(os.path.abspath(path))
    root = None if allow_outside else Path(os.path.realpath(path.parent))
    _check_suffix(path)
    problems = _Problems(path)
    samples: list[Sample] = []
    first_seen: dict[str, str] = {}
    for index, (where, record) in enumerate(_read_entries(path, problems)):
        sample = _parse_record(record, index, where, path.parent, problems, root)
        if sample is None:
            continue
        if sample.id in first_seen:
            problems.add(where, "id", f"{sample.id!r} is already used at {first_seen[sample.id]}",
                         "give every record a unique id")
            continue
        first_seen[sample.id] = where
        samples.append(sample)
    problems.raise_if_any()
    if not samples:
        raise DatasetError(f"{path}: the file holds no records; add at least one record")
    return Dataset(path, tuple(samples))


def load_image(sample: Sample) -> Image.Image:
    """The sample's image as RGB; a missing, unreadable, outside or oversized file raises SampleError
    (skip the sample), with the reason and what to do."""
    problem, advice = _image_problem(sample)
    if problem is None:
        try:
            with Image.open(sample.image_path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    problem = (f"has {image.width} x {image.height} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                               "an image may have here")
                    advice = "downscale it (the model sees a few hundred pixels a side)"
                else:
                    image.draft("RGB", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))  # JPEG: decode at a reduced size
                    image = image.convert("RGB")
                    image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                    return image
        except FileNotFoundError:
            problem = "is missing"
        except (OSError, Image.DecompressionBombError) as error:
            problem = f"cannot be read as an image ({error})"
    raise SampleError(
        f"sample {sample.id!r}: image file {sample.image_path} {problem}; "
        f"{advice} (the sample is skipped until then)",
        sample.id,
    )


def _image_problem(sample: Sample) -> tuple[str | None, str]:
    """What is wrong with the image file before it is opened, and what to do about it."""
    fix = "restore the file or fix the record's 'image' field"
    real = Path(os.path.realpath(sample.image_path))
    if sample.root is not None and not real.is_relative_to(sample.root) and not real.is_relative_to(SHIPPED_DATA):
        return (f"is outside the dataset's folder {sample.root}" + (f" (it leads to {real})" if real != sample.image_path
                                                                      else ""),
                "move the image into the folder, or allow images outside it with --allow-outside "
                "(load_dataset(..., allow_outside=True)) if you trust the dataset")
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return "is missing", fix
    except OSError as error:
        return f"cannot be read ({error})", fix
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe, a device or a folder)", "point the record at an image file"
    return None, fix


def load_images(samples: Iterable[Sample]) -> tuple[list[Sample], list[Image.Image], dict[str, str]]:
    """Open every sample's image: the readable samples, their images, and why each other one was skipped."""
    readable, images, skipped = [], [], {}
    for sample in samples:
        try:
            images.append(load_image(sample))
            readable.append(sample)
        except SampleError as err:
            skipped[sample.id] = str(err)
    return readable, images, skipped


def make_record(sample_id: str, image: str, question: str, response: str, *,
                system: str | None = None, poisoned: bool | None = None, **extra: Any) -> dict[str, Any]:
    """A record in this file format; extra fields (e.g. question_type) are stored alongside."""
    record: dict[str, Any] = {"id": sample_id, "image": image}
    if system is not None:
        record["system"] = system
    record["conversations"] = [
        {"from": HUMAN, "value": f"{IMAGE_PLACEHOLDER}\n{question}"},
        {"from": GPT, "value": response},
    ]
    if poisoned is not None:
        record["poisoned"] = poisoned
    record.update(extra)
    return record


def _record_for(item: Sample | dict[str, Any], folder: Path) -> dict[str, Any]:
    if isinstance(item, Sample):  # re-point the image so the written file still finds it
        return {**item.record, "image": Path(os.path.relpath(item.image_path, folder)).as_posix()}
    if isinstance(item, dict):
        return item
    raise TypeError(f"write_dataset takes a Dataset, Samples or record dicts, not {type(item).__name__}")


def write_dataset(dataset_or_records: Dataset | Iterable[Sample] | Iterable[dict[str, Any]],
                  path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write records as a JSON array or JSONL (by the suffix of `path`), atomically.

    Samples keep their original record; only `image` is rewritten relative to the new file's
    folder, so a subset (e.g. the cleaned dataset) can be exported anywhere. Dicts are written as is.
    """
    path = Path(os.path.abspath(path))
    return atomic_write_text(path, dataset_text(dataset_or_records, path), overwrite=overwrite)


def dataset_text(dataset_or_records: Dataset | Iterable[Sample] | Iterable[dict[str, Any]],
                 path: str | os.PathLike) -> str:
    """The text `write_dataset` would write to `path` (for writers that place the file themselves)."""
    path = Path(os.path.abspath(path))
    _check_suffix(path)
    records = [_record_for(item, path.parent) for item in dataset_or_records]
    if not records:
        raise ValueError(f"{path}: nothing to write; a dataset needs at least one record")
    if path.suffix == ".jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
