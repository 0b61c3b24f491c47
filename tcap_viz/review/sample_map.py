"""A 2-D map of the samples: UMAP of the selected heads' tri-component profiles.

Poisoned samples pull the selected heads the same way, so they gather in one island; a
reviewer lasso-selects it and reviews it as a group. UMAP costs seconds to minutes, so the
coordinates are cached in the run folder under the heads and samples they were made from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from tcap_viz.atomic import atomic_write
from tcap_viz.attention.extract import Extraction
from tcap_viz.storage.run_dir import RunDir

MAP_FILE = "map.npz"


def map_features(profiles: np.ndarray, heads: list[tuple[int, int]]) -> np.ndarray:
    """(M, features): the three shares of each selected head; every head when none was selected."""
    if heads:
        layers, cols = np.array(heads).T
        return profiles[:, layers, cols].reshape(len(profiles), -1)
    return profiles.reshape(len(profiles), -1)


def _key(ids: list[str], heads: list[tuple[int, int]], n_neighbors: int) -> str:
    return hashlib.sha256(repr((ids, heads, n_neighbors)).encode()).hexdigest()


def sample_map(run: RunDir, extraction: Extraction, heads: list[tuple[int, int]],
               on_progress: Callable[[str], None] | None = None, n_neighbors: int = 15,
               random_state: int = 0) -> pd.DataFrame:
    """Columns id, x, y for the scanned samples."""
    key = _key(extraction.ids, heads, n_neighbors)
    path = run.file(MAP_FILE)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return pd.DataFrame({"id": extraction.ids, "x": z["xy"][:, 0], "y": z["xy"][:, 1]})
    if on_progress:
        on_progress(f"computing the UMAP map of {len(extraction.ids)} samples (cached afterwards)")
    xy = _embed(map_features(extraction.profiles, heads), n_neighbors, random_state)

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, xy=xy, key=np.array(key))

    atomic_write(path, write)
    return pd.DataFrame({"id": extraction.ids, "x": xy[:, 0], "y": xy[:, 1]})


def _embed(features: np.ndarray, n_neighbors: int, random_state: int) -> np.ndarray:
    n = len(features)
    if n < 4:  # UMAP needs a neighbourhood; a handful of points is shown as they are
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)]).astype(np.float32)
    import umap  # imported late: its numba compilation costs seconds

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), random_state=random_state, n_jobs=1)
    return reducer.fit_transform(features.astype(np.float32)).astype(np.float32)
