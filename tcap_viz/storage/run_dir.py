"""The run directory: everything one scan produced, in open formats (npz, csv, json).

The attention profiles are the expensive part; they are stored with the key of what produced
them (model, dataset, extraction settings), so reopening or re-detecting reuses them.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tcap_viz.atomic import atomic_write, atomic_write_text
from tcap_viz.attention.extract import Extraction, in_order

PROFILES = "profiles.npz"
HEADS = "heads.csv"
SAMPLES = "samples.csv"
CONFIG = "config.json"
METRICS = "metrics.json"
CHUNKS = "chunks"  # partial extractions of an unfinished or sharded scan
#: What reading a damaged or foreign npz raises (cut short, not a zip, a key missing).
_UNREADABLE = (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError)


class RunDir:
    """A folder holding one scan; every write is atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def save_extraction(self, extraction: Extraction, cache_key: str, model_key: str = "",
                        sample_keys: dict[str, str] | None = None) -> None:
        """`model_key` and `sample_keys` (id -> key) let a later scan reuse the rows that did not change."""
        _write_extraction(self.file(PROFILES), extraction, cache_key, model_key, sample_keys or {})

    def load_extraction(self, cache_key: str | None = None) -> Extraction | None:
        """The stored profiles, or None when absent or produced from other inputs than `cache_key`."""
        return _read_extraction(self.file(PROFILES), cache_key)

    def reusable(self, model_key: str, sample_keys: dict[str, str]) -> Extraction | None:
        """The stored rows (and skips) of samples whose key is unchanged, by the same model; None if none."""
        path = self.file(PROFILES)
        if not path.exists():
            return None
        try:  # the keys first: the profiles are read only when some rows can be reused
            with np.load(path, allow_pickle=False) as z:
                if "model_key" not in z.files or str(z["model_key"]) != model_key:
                    return None
                stored = dict(zip(z["key_ids"].tolist(), z["key_values"].tolist()))
        except _UNREADABLE as error:
            _set_aside(path, error)
            return None
        same = [i for i, key in sample_keys.items() if stored.get(i) == key]
        extraction = _read_extraction(path, None) if same else None  # sets a damaged file aside
        return in_order(extraction, same) if extraction is not None else None

    # -- partial extractions: chunks of samples, so a scan resumes and shards merge ------------------
    def _chunk_dir(self, cache_key: str) -> Path:
        return self.path / CHUNKS / cache_key[:16]

    def save_chunk(self, cache_key: str, index: int, extraction: Extraction) -> None:
        _write_extraction(self._chunk_dir(cache_key) / f"chunk-{index:06d}.npz", extraction, cache_key)

    def load_chunks(self, cache_key: str) -> dict[int, Extraction]:
        """The finished chunks of the extraction `cache_key` (chunks of other inputs are ignored)."""
        chunks = {}
        for path in sorted(self._chunk_dir(cache_key).glob("chunk-*.npz")):
            extraction = _read_extraction(path, cache_key)
            if extraction is not None:
                chunks[int(path.stem.removeprefix("chunk-"))] = extraction
        return chunks

    def clear_chunks(self, cache_key: str) -> None:
        """Called once the merged profiles are saved: the chunks are then a copy of them."""
        folder = self._chunk_dir(cache_key)
        for path in folder.glob("chunk-*.npz"):
            path.unlink()
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()

    def save_table(self, name: str, table: pd.DataFrame) -> None:
        atomic_write(self.file(name), lambda tmp: table.to_csv(tmp, index=False))

    def load_table(self, name: str) -> pd.DataFrame:
        # a vote pattern such as "0111" is text: read as a number it loses its leading zeros
        return pd.read_csv(self.file(name), keep_default_na=True, dtype={"id": str, "voting_heads": str})

    def save_json(self, name: str, obj) -> None:
        atomic_write_text(self.file(name), json.dumps(obj, indent=2, default=_jsonable) + "\n")

    def load_json(self, name: str):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def has(self, name: str) -> bool:
        return self.file(name).exists()


def _write_extraction(path: Path, extraction: Extraction, cache_key: str, model_key: str = "",
                      sample_keys: dict[str, str] | None = None) -> None:
    skipped_ids, sample_keys = list(extraction.skipped), sample_keys or {}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, ids=np.array(extraction.ids, dtype=str), profiles=extraction.profiles,
                vision_entropy=extraction.vision_entropy, skipped_ids=np.array(skipped_ids, dtype=str),
                skipped_reasons=np.array([extraction.skipped[i] for i in skipped_ids], dtype=str),
                **{name: value for name, value in (("hidden", extraction.hidden), ("base_logprob", extraction.base_logprob))
                   if value is not None},
                cache_key=np.array(cache_key), model_key=np.array(model_key),
                key_ids=np.array(list(sample_keys), dtype=str), key_values=np.array(list(sample_keys.values()), dtype=str))

    atomic_write(path, write)


def _read_extraction(path: Path, cache_key: str | None) -> Extraction | None:
    """The stored profiles; None when absent, from other inputs, or unreadable (then set aside)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if cache_key is not None and str(z["cache_key"]) != cache_key:
                return None
            return Extraction(ids=z["ids"].tolist(), profiles=z["profiles"], vision_entropy=z["vision_entropy"],
                              skipped=dict(zip(z["skipped_ids"].tolist(), z["skipped_reasons"].tolist())),
                              hidden=z["hidden"] if "hidden" in z.files else None,
                              base_logprob=z["base_logprob"] if "base_logprob" in z.files else None)
    except _UNREADABLE as error:
        _set_aside(path, error)
        return None


def _set_aside(path: Path, error: Exception) -> None:
    """A damaged cache (a disk error, a copy cut short) is renamed, not deleted, and extracted again."""
    aside = path.with_name(f"{path.name}.unreadable-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}")
    path.rename(aside)
    warnings.warn(f"{path} could not be read ({type(error).__name__}: {error}); it was renamed to {aside.name} "
                  "and its profiles are extracted again", stacklevel=3)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")
