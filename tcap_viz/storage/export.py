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
from glob import escape as glob_escape
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
    (image paths are written relative to wherever the file goes). Named automatically, an export
    whose content the newest one there already has (same original, same removals, same rule and
    threshold) is not written again: that one is returned, so repeated clicks or retries cannot
    fill the disk with copies.
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
    original_sha = hashlib.sha256(original.read_bytes()).hexdigest()
    content = hashlib.sha256(json.dumps([original_sha, sorted(remove.items()), manifest.get("rule"),
                                         manifest.get("threshold")]).encode()).hexdigest()
    if out is None:
        previous = _newest_export(data_path.parent, original)
        if previous is not None and previous[1].get("content_sha256") == content:
            return ExportResult(Path(previous[1]["cleaned"]), previous[0], previous[1]["kept"], len(remove))
    manifest_text = json.dumps({
        **manifest,
        "original": str(original),
        "original_sha256": original_sha,
        "content_sha256": content,
        "cleaned": str(data_path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kept": len(kept),
        "removed": [{"id": i, "reason": r} for i, r in remove.items()],
    }, indent=2, ensure_ascii=False) + "\n"
    # the manifest first, the data last: a cleaned dataset never appears without its manifest
    atomic_write_together({manifest_path: manifest_text, data_path: dataset_text(kept, data_path)})
    return ExportResult(data_path, manifest_path, len(kept), len(remove))


def _newest_export(folder: Path, original: Path) -> tuple[Path, dict] | None:
    """The newest automatically named export of `original` in `folder` whose files are both there."""
    for manifest_path in sorted(folder.glob(f"{glob_escape(original.stem)}.cleaned-*.manifest.json"), reverse=True):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if Path(manifest.get("cleaned", "")).exists():
            return manifest_path, manifest
    return None
