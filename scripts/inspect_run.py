"""Why a run flagged what it flagged, against ground truth (for developing the detector).

    python scripts/inspect_run.py --model sample_data/base_model --adapter runs/report/models/text_prefix-5-s1-lora-300 \
        --data runs/report/data/text_prefix-5-s1/train/data.jsonl --run runs/report/runs/text_prefix-5-s1-lora-300

Re-detects from the run's cached profiles with the default detector and prints: the selected
heads; every candidate head by separation score with its target group and how many heads separate
that group; the heads that separate the poisoned samples best (AUROC of the head statistic against
the labels: evaluation only, the detector never sees them) with their separation score and how
many poisoned samples their target group holds; EM from each start (log-likelihood, flagged);
and what the flagged samples have in common (answers, and each extra record field).
The numbers quoted in docs/METHOD_CHOICES.md's known limitations come from this script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcap_viz.data.dataset import STANDARD_FIELDS  # noqa: E402
from tcap_viz.detection import DawidSkene, head_statistic  # noqa: E402
from tcap_viz.pipeline import ScanConfig  # noqa: E402
from tcap_viz.review.session import ReviewSession  # noqa: E402


def _aurocs(stat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(L, H) AUROC of every head's statistic for `labels`, either direction."""
    auroc = np.array([[roc_auc_score(labels, stat[:, l, h]) for h in range(stat.shape[2])]
                      for l in range(stat.shape[1])])
    return np.maximum(auroc, 1 - auroc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", default=None, help="a LoRA adapter on --model (the report's customer models)")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        session = ReviewSession(args.model, args.data, args.run, ScanConfig(adapter=args.adapter, dtype="float32"),
                                decisions=Path(tmp) / "d.sqlite").open()
        tcap, extraction, dataset = session.result.tcap, session.result.extraction, session.dataset
        truth = np.array([dataset.by_id(i).poisoned for i in extraction.ids], dtype=bool)
        heads = session.result.heads.set_index(["layer", "head"])
        print("selected heads:", ", ".join(f"L{l}H{h} (agreement {heads.loc[(l, h), 'agreement']:.2f})"
                                            for l, h in session.selected_heads()) or "none")

        stat = head_statistic(extraction.profiles.astype(float), tcap.statistic, tcap.transform)
        auroc = _aurocs(stat, truth)
        print("\ncandidate heads by separation score: SS, gap, target group (poisoned in it), and how many heads"
              " separate that group with AUROC > 0.95 (the group's own label, no ground truth):")
        candidates = heads[heads["candidate"]].sort_values("separation", ascending=False)
        for (l, h), row in candidates.iterrows():
            votes = tcap.profiler_.head_mixture(l, h).target_posterior(stat[:, l, h]) > tcap.tau_vote
            support = int((_aurocs(stat, votes) > 0.95).sum()) if 0 < votes.sum() < len(votes) else 0
            print(f"  L{l}H{h}: SS {row['separation']:.1f}, gap {row['gap']:.2f}, group {votes.sum()} "
                  f"({(votes & truth).sum()} poisoned), {support} heads separate it")
        print(f"\nheads separating the poisoned samples best ({truth.sum()} poisoned; labels used here only):")
        for flat in np.argsort(-auroc.ravel())[: args.top]:
            l, h = np.unravel_index(flat, auroc.shape)
            votes = tcap.profiler_.head_mixture(l, h).target_posterior(stat[:, l, h]) > tcap.tau_vote
            print(f"  L{l}H{h}: AUROC {auroc[l, h]:.3f}, SS {heads.loc[(l, h), 'separation']:.1f}, K* "
                  f"{heads.loc[(l, h), 'k']}, target group {votes.sum()} samples, {(votes & truth).sum()} poisoned")

        if tcap.em_ is not None:
            print("\nEM from each start:")
            for init in ("soft", "majority"):
                em = DawidSkene(tcap.max_iter, tcap.tol, tcap.smoothing, init).fit(tcap.votes_)
                flagged = em.posterior_ > tcap.threshold
                print(f"  {init}: log-likelihood {em.log_likelihood_:.1f}, flagged {flagged.sum()}, "
                      f"{(flagged & truth).sum()} poisoned")

        flagged = session.table()
        flagged = flagged[flagged["flagged"]]
        print(f"\nflagged {len(flagged)}, {int(flagged['poisoned_truth'].sum())} poisoned; most frequent answers:")
        print(session.common_responses(top=args.top).to_string(index=False))
        records = [dataset.by_id(i).record for i in flagged["id"]]
        for field in sorted({k for r in records for k in r} - set(STANDARD_FIELDS)):
            counts = Counter(str(r.get(field)) for r in records).most_common(args.top)
            print(f"{field} among the flagged: {counts}")


if __name__ == "__main__":
    main()
