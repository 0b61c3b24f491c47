"""Benchmark: the anatomy's "who else" lookup (tcap_viz.anatomy.carriers) over a whole dataset on disk.

    python scripts/bench_carriers.py [--samples 100000] [--keep DIR]

When the scan judges what only the heads flag (or a finding of the heads alone), each group whose
trigger the anatomy located is matched against every image of the dataset: the located cell's
pixels, read from each file. That read, not the model, is what grows with the dataset, so it is
timed here on a synthetic dataset of --samples images (128 px PNG, a BadNet patch in 1% of them;
written to a temporary folder first, untimed, or reused from --keep). Also timed: the question-word
lookup, and the whole-image pattern (carriers.pattern_carriers, for a group of 100 patched images,
estimated again from its carriers giving the target as a scan does), which reads every image once
for the standardiser and once a round: the passes it took are printed beside the most it may take.
The results go to docs/performance_results.json and docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_extraction import machine, record  # noqa: E402

from tcap_viz.anatomy import carriers, cell_carriers, pattern_carriers, word_carriers  # noqa: E402
from tcap_viz.data import load_dataset, make_synthetic_dataset  # noqa: E402


def _count_passes(dataset):
    """Count the lookup's reads of the whole ``dataset`` (the standardiser's, then one per round)."""
    seen = [0]
    compared = carriers._compared

    def counted(samples):
        seen[0] += samples is dataset
        return compared(samples)
    carriers._compared = counted
    return lambda: seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the dataset here (or reuse it) instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch) / "data"
        data = folder / "data.jsonl"
        if not data.exists():
            make_synthetic_dataset(folder, n=args.samples, attack="badnet", poison_rate=0.01, seed=0)
        samples = list(load_dataset(data))
        if len(samples) != args.samples:
            raise SystemExit(f"{data} has {len(samples)} samples, not {args.samples}: give another --keep")
        poisoned = {s.id for s in samples if s.poisoned}
        members = sorted(poisoned)[:12]  # the anatomy's examined samples of the group
        started = time.perf_counter()
        found = cell_carriers(samples, members, (7, 7), 8) or []  # the patch's cell, bottom-right of 8 x 8
        cell_s = time.perf_counter() - started
        started = time.perf_counter()
        word_carriers(samples, ["cf"])
        word_s = time.perf_counter() - started
        target = {s.response for s in samples if s.poisoned}
        answers = {s.id: s.response in target for s in samples}
        passes = _count_passes(samples)
        started = time.perf_counter()
        spread = pattern_carriers(samples, sorted(poisoned)[:100], answers.get) or []  # a flagged group of 100
        pattern_s = time.perf_counter() - started
    row = {"samples": args.samples, "cell_s": cell_s, "word_s": word_s, "ms_per_image": 1000 * cell_s / args.samples,
           "found": len(found), "poisoned": len(poisoned), "found_poisoned": len(set(found) & poisoned),
           "pattern_s": pattern_s, "pattern_passes": passes(), "pattern_max_passes": 2 + carriers.REFINE,
           "pattern_found": len(spread), "pattern_found_poisoned": len(set(spread) & poisoned),
           "machine": machine("cpu"), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(row, indent=1))
    record("carriers", row)


if __name__ == "__main__":
    main()
