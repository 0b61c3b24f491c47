"""Issue 12's levers on the cached detection-report runs, each switched off in turn (docs/LEVERS.md).

    python scripts/levers_probe.py                    # every case under runs/report/runs/
    python scripts/levers_probe.py clean-s1 badnet_left-10-s1

Re-detects from each run's cached profiles and base-model log-probabilities (no model): today's
default; the same with the plausibility vote used even when it singles out under 1% of the samples;
with a head agreeing with the vote when the two groups nest (the overlap coefficient, as between
heads) instead of when most of its group is implausible; both (the first anchored default); the
heads alone; the heads alone without the corroboration rule (a group EM settles on needs two heads
that corroborate it); the vote alone. Ground truth only scores. Prints a markdown table: flagged, F1.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.detection import PlausibilityVote, TCAPDetector, detection_metrics  # noqa: E402
from tcap_viz.detection import head_profiler, tcap  # noqa: E402
from tcap_viz.storage.run_dir import SAMPLES, RunDir  # noqa: E402

RUNS = ROOT / "runs" / "report" / "runs"
ALWAYS = mock.patch.object(tcap, "_singles_out_a_group", lambda *a: True)
NESTING = mock.patch.object(head_profiler, "_share_in", head_profiler._overlap_coefficient)
VARIANTS = {"default": (), "vote used under 1%": (ALWAYS,), "nesting agreement": (NESTING,),
            "both (first anchored default)": (ALWAYS, NESTING), "heads only": None,
            "heads only, uncorroborated": None, "vote alone": None}


def main() -> None:
    names = sys.argv[1:] or sorted(p.name.removesuffix("-lora-600") for p in RUNS.glob("*-lora-600"))
    print("| case | " + " | ".join(VARIANTS) + " |\n" + "|---" * (1 + len(VARIANTS)) + "|")
    for name in names:
        run = RunDir(RUNS / f"{name}-lora-600")
        if not run.has(SAMPLES):
            continue
        extraction = run.load_extraction()
        table = run.load_table(SAMPLES).set_index("id").loc[extraction.ids]
        truth = table["poisoned_truth"].astype(bool).to_numpy()  # scoring only
        vote = PlausibilityVote().fit(extraction.base_logprob).flagged_
        cells = []
        for variant, patches in VARIANTS.items():
            if variant == "vote alone":
                flagged = vote
            elif variant.startswith("heads only"):
                flagged = TCAPDetector(corroborate=variant == "heads only").fit(extraction.profiles).flagged_
            else:
                with ExitStack() as stack:
                    for patch in patches:
                        stack.enter_context(patch)
                    flagged = TCAPDetector().fit(extraction.profiles, vote).flagged_
            m = detection_metrics(truth, np.asarray(flagged))
            cells.append(f"{m['n_flagged']}, {m['f1']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
