"""TCAP with per-head scikit-learn mixtures vs all heads at once (`mixture="binned"`), on the
detection report's cached profiles.

    python scripts/compare_mixtures.py        # after scripts/detection_report.py

Re-detects every case in runs/report/runs/ from its stored profiles with the default detector and
with `mixture="binned"`, and prints, per case, F1, the number flagged and the seconds each took.
Ground truth is read only to score. docs/METHOD_CHOICES.md quotes the table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.detection import TCAPDetector, detection_metrics  # noqa: E402
from tcap_viz.storage.run_dir import SAMPLES, RunDir  # noqa: E402

RUNS = ROOT / "runs" / "report" / "runs"


def main() -> None:
    print("| case | sklearn F1 | sklearn flagged | binned F1 | binned flagged | sklearn s | binned s |")
    print("|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in RUNS.iterdir() if (p / SAMPLES).exists()):
        run = RunDir(folder)
        extraction = run.load_extraction()
        table = run.load_table(SAMPLES).set_index("id")
        truth = table.loc[extraction.ids, "poisoned_truth"].astype(bool).to_numpy()
        cells = []
        for mixture in ("sklearn", "binned"):
            started = time.perf_counter()
            detector = TCAPDetector(mixture=mixture).fit(extraction.profiles)
            seconds = time.perf_counter() - started
            scores = detection_metrics(truth, detector.flagged_, detector.posterior_)
            cells.append((scores["f1"], int(detector.flagged_.sum()), seconds))
        (f1_a, n_a, s_a), (f1_b, n_b, s_b) = cells
        print(f"| {folder.name} | {f1_a:.3f} | {n_a} | {f1_b:.3f} | {n_b} | {s_a:.1f} | {s_b:.1f} |", flush=True)


if __name__ == "__main__":
    main()
