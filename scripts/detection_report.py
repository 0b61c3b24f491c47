"""docs/DETECTION.md: `tcap-viz report` over the testbed's every case and seed, written there.

    python scripts/detection_report.py                             # every case, 3 seeds (hours on 2 cores)
    python scripts/detection_report.py --device cuda --workers 16   # the same on a GPU machine
    python scripts/detection_report.py --render                    # only rewrite the report from cached results

Every option of `tcap-viz report` applies (`tcap-viz report --help`); the package does the work
(tcap_viz/benchmark). Each case's numbers go to docs/results/detection/ (commit them with the report:
a fresh clone renders it again); the models and scans stay under runs/report/.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.cli import main  # noqa: E402

if __name__ == "__main__":
    os.chdir(ROOT)  # the report quotes the command, runnable from the repository's root
    main(["report", "--work", "runs/report", "--results", "docs/results/detection", "--out", "docs/DETECTION.md",
          *sys.argv[1:]])
