"""The cleaned dataset: the original file minus the samples a review removed, plus a manifest.

It is written beside the original (so relative image paths still resolve), under a new
timestamped name, never over an existing file, and together with its manifest: both are written
and synced under temporary names, then renamed, so a failure leaves neither (and a killed export's
temporary files are removed by the next export). The manifest says which run, threshold and rule produced it and who
decided each removal, so a cleaned dataset can always be traced back to its review.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from tcap_viz.atomic import atomic_write_together, remove_stale_temporaries
from tcap_viz.data import Dataset, dataset_text

#: What an export removes: only confirmed poisons, or also every flagged sample not rejected.
RULES = ("confirmed", "flagged_not_rejected")


@dataclass
class ExportResult:
    data_path: Path
    manifest_path: Path
    kept: int
    removed: int


def removal_reasons(samples: pd.DataFrame, rule: str) -> dict[str, str]:
    """id -> why it is removed, from a table with `id`, `flagged` and `decision` columns."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    confirmed = samples["decision"] == "poison"
    reasons = {i: "confirmed poison" for i in samples.loc[confirmed, "id"]}
    if rule == "flagged_not_rejected":
        open_flags = samples["flagged"].fillna(False).astype(bool) & ~samples["decision"].isin(["poison", "clean"])
        reasons.update({i: f"flagged, decision {d}" for i, d in samples.loc[open_flags, ["id", "decision"]].values})
    return reasons


def export_cleaned(dataset: Dataset, remove: dict[str, str], manifest: dict,
                   out: str | Path | None = None, folder: str | Path | None = None) -> ExportResult:
    """Write `dataset` without the samples in `remove` (id -> reason) and a manifest beside it.

    `out` defaults to `<name>.cleaned-<UTC time><suffix>` in `folder`, by default the dataset's own
    (image paths are written relative to wherever the file goes).
    """
    unknown = sorted(set(remove) - {s.id for s in dataset})
    if unknown:
        raise KeyError(f"{dataset.path}: cannot remove unknown sample id(s) {unknown[:5]}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    original = Path(dataset.path)
    name = f"{original.stem}.cleaned-{stamp}{original.suffix}"
    data_path = Path(out) if out else (Path(folder) / name if folder else original.with_name(name))
    if data_path.resolve() == original.resolve():
        raise FileExistsError(f"{data_path} is the original dataset; an export never overwrites it")
    kept = [s for s in dataset if s.id not in remove]
    manifest_path = data_path.with_name(data_path.name + ".manifest.json")
    remove_stale_temporaries(data_path.parent, f"{original.stem}.cleaned-")  # left by an export that was killed
    manifest_text = json.dumps({
        **manifest,
        "original": str(original),
        "original_sha256": hashlib.sha256(original.read_bytes()).hexdigest(),
        "cleaned": str(data_path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kept": len(kept),
        "removed": [{"id": i, "reason": r} for i, r in remove.items()],
    }, indent=2, ensure_ascii=False) + "\n"
    # the manifest first, the data last: a cleaned dataset never appears without its manifest
    atomic_write_together({manifest_path: manifest_text, data_path: dataset_text(kept, data_path)})
    return ExportResult(data_path, manifest_path, len(kept), len(remove))
