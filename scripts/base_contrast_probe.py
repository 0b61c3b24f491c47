"""Issue 12's base-contrast lever, measured before it is built: drop a head whose target group the
base model's same head already separates (structure the base shows is not a backdoor), then select
and vote as usual. Heads only (no plausibility vote), on cached detection-report runs.

    python scripts/base_contrast_probe.py badnet_left-10-s1 clean-s1 blend-5-s1 badnet-5-s1

For each case (a run of `scripts/detection_report.py` under runs/report/), the base model's profiles
of the same samples are extracted once (cached under runs/base_contrast/); a candidate head is "old"
when the AUROC of the base's statistic for that head against the head's own target group (no
label) is at least CUT. Ground truth only scores. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.demo import BASE_MODEL  # noqa: E402
from tcap_viz.detection import DawidSkene, TCAPDetector, detection_metrics, head_statistic  # noqa: E402
from tcap_viz.detection.head_profiler import HeadProfiler  # noqa: E402
from tcap_viz.storage.run_dir import SAMPLES, RunDir  # noqa: E402

REPORT = ROOT / "runs" / "report"
WORK = ROOT / "runs" / "base_contrast"
CUTS = (0.8, 0.9, 0.95)


def base_profiles(case: str, ids: list[str]) -> np.ndarray:
    """The base model's tri-component profiles of the case's training samples (cached)."""
    out = WORK / f"{case}.npy"
    if not out.exists():
        from tcap_viz.attention.extract import extract_profiles
        from tcap_viz.data import load_dataset
        from tcap_viz.model.adapter import MLLMAdapter

        base = MLLMAdapter.load(BASE_MODEL, dtype="float32")
        samples = {s.id: s for s in load_dataset(REPORT / "data" / case / "train" / "data.jsonl")}
        extraction = extract_profiles(base, [samples[i] for i in ids], 16, show_progress=False)
        if extraction.ids != ids:
            raise SystemExit(f"{case}: the base model skipped samples the scan read; nothing to compare")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, extraction.profiles)
    return np.load(out)


def heads_without_old_groups(shares: np.ndarray, base_shares: np.ndarray, cut: float | None) -> tuple[np.ndarray, int]:
    """Heads-only TCAP (today's defaults) after dropping candidates whose group the base separates."""
    params = {k: getattr(TCAPDetector(), k) for k in HeadProfiler().get_params()}
    profiler = HeadProfiler(**params).fit(shares)
    dropped = 0
    for layer, head in np.argwhere(profiler.candidate_) if cut is not None else []:
        group = profiler.head_mixture(layer, head).target_posterior(shares[:, layer, head]) > profiler.tau_vote
        if 0 < group.sum() < len(group):
            auroc = roc_auc_score(group, base_shares[:, layer, head])
            if max(auroc, 1 - auroc) >= cut:
                profiler.candidate_[layer, head] = False
                dropped += 1
    profiler._select(shares)
    votes = profiler.votes(shares)
    posterior = DawidSkene().fit(votes).posterior_ if votes.shape[1] >= 2 else np.zeros(len(shares))
    return posterior > 0.5, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="+", help="CASE-sSEED of a LoRA-600 report run, e.g. blend-5-s1")
    args = parser.parse_args()
    print("| case | heads only: flagged, F1 | " + " | ".join(f"old groups dropped (AUROC >= {c}): dropped, "
                                                          "flagged, F1" for c in CUTS) + " |")
    print("|---" * (2 + len(CUTS)) + "|")
    for case in args.cases:
        run = RunDir(REPORT / "runs" / f"{case}-lora-600")
        extraction = run.load_extraction()
        table = run.load_table(SAMPLES).set_index("id").loc[extraction.ids]
        truth = table["poisoned_truth"].astype(bool).to_numpy()  # scoring only
        shares = head_statistic(extraction.profiles.astype(float))
        base_shares = head_statistic(base_profiles(case, extraction.ids).astype(float))
        cells = []
        for cut in (None, *CUTS):
            flagged, dropped = heads_without_old_groups(shares, base_shares, cut)
            m = detection_metrics(truth, flagged)
            cells.append(f"{m['n_flagged']}, {m['f1']:.2f}" if cut is None else f"{dropped}, {m['n_flagged']}, {m['f1']:.2f}")
        print(f"| {case} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
