"""Benchmark: the demo's first open (a scan with nothing cached), with and without the confirmation.

    python scripts/bench_first_open.py

The demo is a full fine-tune scanned without its base, so the heads decide alone and the scan
confirms their finding (README, "Confirmation"). Each variant scans into a fresh temporary folder, one
after the other. Prints a markdown table (docs/APP_PERFORMANCE.md holds the committed numbers).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.benchmark.run_case import machine  # noqa: E402
from tcap_viz.demo import DEMO_DATA, DEMO_MODEL  # noqa: E402
from tcap_viz.pipeline import ScanConfig, scan  # noqa: E402


def main() -> None:
    print(f"Machine: {machine('cpu')}\n\n| scan | first open, s | flagged | F1 |\n|---|---|---|---|")
    for confirm in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = scan(DEMO_MODEL, DEMO_DATA, Path(tmp) / "run", ScanConfig(device="cpu", confirm=confirm),
                          show_progress=False)
            seconds = time.perf_counter() - started
        tcap = result.metrics["tcap"]
        print(f"| {'with' if confirm else 'without'} the confirmation | {seconds:.1f} | {tcap['n_flagged']} | "
              f"{tcap['f1']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
