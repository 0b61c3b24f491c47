"""The run directory: everything one scan produced, in open formats (npz, csv, json).

The attention profiles are the expensive part; they are stored with the key of what produced
them (model, dataset, extraction settings), so reopening or re-detecting reuses them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tcap_viz.atomic import atomic_write, atomic_write_text
from tcap_viz.attention.extract import Extraction

PROFILES = "profiles.npz"
HEADS = "heads.csv"
SAMPLES = "samples.csv"
CONFIG = "config.json"
METRICS = "metrics.json"


class RunDir:
    """A folder holding one scan; every write is atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def save_extraction(self, extraction: Extraction, cache_key: str) -> None:
        skipped_ids = list(extraction.skipped)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, ids=np.array(extraction.ids, dtype=str), profiles=extraction.profiles,
                    vision_entropy=extraction.vision_entropy, skipped_ids=np.array(skipped_ids, dtype=str),
                    skipped_reasons=np.array([extraction.skipped[i] for i in skipped_ids], dtype=str),
                    cache_key=np.array(cache_key))

        atomic_write(self.file(PROFILES), write)

    def load_extraction(self, cache_key: str | None = None) -> Extraction | None:
        """The stored profiles, or None when absent or produced from other inputs than `cache_key`."""
        path = self.file(PROFILES)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            if cache_key is not None and str(z["cache_key"]) != cache_key:
                return None
            return Extraction(ids=z["ids"].tolist(), profiles=z["profiles"], vision_entropy=z["vision_entropy"],
                              skipped=dict(zip(z["skipped_ids"].tolist(), z["skipped_reasons"].tolist())))

    def save_table(self, name: str, table: pd.DataFrame) -> None:
        atomic_write(self.file(name), lambda tmp: table.to_csv(tmp, index=False))

    def load_table(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.file(name), keep_default_na=True, dtype={"id": str})

    def save_json(self, name: str, obj) -> None:
        atomic_write_text(self.file(name), json.dumps(obj, indent=2, default=_jsonable) + "\n")

    def load_json(self, name: str):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def has(self, name: str) -> bool:
        return self.file(name).exists()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")
