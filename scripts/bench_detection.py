"""Benchmark: the detection stage's default (head profiling, anchored selection, EM) at 1024 heads x 100k samples.

    python scripts/bench_detection.py [--samples 100000] [--layers 32] [--heads 32] [--sklearn-heads 64]

Profiles of that size are made from the demo scan's real profiles (scanned first if needed):
samples drawn with replacement, each of the demo's 96 heads copied to fill the layers x heads
grid, with 1% multiplicative noise so no two heads are identical; a real 100k x 1024 extraction
would take hours here and adds nothing to what this measures. The default detector (`mixture="auto"`,
which fits every head at once at this size, with a plausibility vote the heads agree with: the
best-ranked head's own group, since only its cost matters here) is timed on the whole grid, and
so is the model-free part of the scan's judging of where the heads and the vote disagree (each sample
answering as the demo sample it was drawn from); scikit-learn's per-head fits on --sklearn-heads heads, scaled
linearly to the grid (a full run would take about a quarter of an hour). Also reported: how often
the two choose the same K* on those heads, against how often scikit-learn agrees with itself
across two seeds. The results go to docs/performance_results.json and docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_extraction import machine, record  # noqa: E402
from tcap_viz.anatomy import vote_joins  # noqa: E402
from tcap_viz.data import load_dataset  # noqa: E402
from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, default_run_dir  # noqa: E402
from tcap_viz.detection import TCAPDetector, head_statistic  # noqa: E402
from tcap_viz.detection.head_profiler import HeadProfiler  # noqa: E402
from tcap_viz.pipeline import scan  # noqa: E402
from tcap_viz.storage.run_dir import RunDir  # noqa: E402


def synthetic_profiles(samples: int, layers: int, heads: int) -> tuple[np.ndarray, list[str]]:
    """The profiles, and each synthetic sample's response (its demo sample's)."""
    run = RunDir(default_run_dir(str(DEMO_MODEL), DEMO_DATA))
    demo = run.load_extraction()
    if demo is None:
        demo = scan(DEMO_MODEL, DEMO_DATA, run.path).extraction
    source = demo.profiles.reshape(len(demo.profiles), -1, 3)  # (M, 96, 3)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(source), samples)
    columns = np.arange(layers * heads) % source.shape[1]
    profiles = source[rows][:, columns].astype(np.float32)
    profiles *= 1 + 0.01 * rng.standard_normal(profiles.shape, dtype=np.float32)
    profiles /= profiles.sum(-1, keepdims=True)
    response = {s.id: s.response for s in load_dataset(DEMO_DATA)}
    return profiles.reshape(samples, layers, heads, 3), [response[demo.ids[r]] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--sklearn-heads", type=int, default=64)
    args = parser.parse_args()
    profiles, responses = synthetic_profiles(args.samples, args.layers, args.heads)
    n_heads = args.layers * args.heads

    # a plausibility vote the heads agree with (the best-ranked head's own group), so that the anchored
    # selection and the EM run as on a real backdoor; only its cost matters here
    heads_alone = HeadProfiler(mixture="binned", top_heads=1).fit(head_statistic(profiles.astype(float)))
    vote = heads_alone.votes(head_statistic(profiles.astype(float)))[:, 0].astype(bool)
    started = time.perf_counter()
    detector = TCAPDetector().fit(profiles, plausibility=vote)
    default_s = time.perf_counter() - started
    started = time.perf_counter()  # the scan's judging of where heads and vote disagree, its model-free part
    vote_joins(responses, detector.flagged_ & vote, vote & ~detector.flagged_, [str(i) for i in range(args.samples)])
    judging_s = time.perf_counter() - started

    subset = head_statistic(profiles[:, : max(1, args.sklearn_heads // args.heads)].astype(float))
    started = time.perf_counter()
    sklearn = HeadProfiler(random_state=0, mixture="sklearn").fit(subset)
    sklearn_s = (time.perf_counter() - started) * n_heads / sklearn.n_components_.size
    other_seed = HeadProfiler(random_state=1, mixture="sklearn").fit(subset)
    binned = HeadProfiler(mixture="binned").fit(subset)
    row = {"samples": args.samples, "heads": n_heads, "default_s": default_s, "judging_s": judging_s,
           "mixture": detector.profiler_.mixture_,
           "sklearn_s_scaled": sklearn_s,
           "sklearn_heads_timed": int(sklearn.n_components_.size),
           "k_agreement_binned": float(np.mean(binned.n_components_ == sklearn.n_components_)),
           "k_agreement_sklearn_seeds": float(np.mean(other_seed.n_components_ == sklearn.n_components_)),
           "selected_heads": len(detector.profiler_.selected_heads_), "machine": machine("cpu"),
           "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(row, indent=1))
    record("detection", row)


if __name__ == "__main__":
    main()
