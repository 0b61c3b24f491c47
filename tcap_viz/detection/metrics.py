"""Detection quality against ground truth, for evaluation only (detectors never see labels)."""

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score


def detection_metrics(y_true, flagged, scores=None):
    """Precision, recall, F1, AUROC and the confusion counts of a flag set.

    Undefined ratios are 0, not errors (sklearn ``zero_division=0``): flagging
    nothing gives precision 0, and a dataset with no poisoned sample gives recall
    and F1 0. AUROC is NaN when ``scores`` is None or not all finite (a detector with
    no evidence, such as BYE without a sensitive layer, has no score) or when ``y_true``
    has one class only.
    """
    y_true = np.asarray(y_true, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tn, fp, fn, tp = confusion_matrix(y_true, flagged, labels=[False, True]).ravel()
    ranked = scores is not None and np.isfinite(scores).all() and 0 < y_true.sum() < len(y_true)
    return {
        "precision": float(precision_score(y_true, flagged, zero_division=0)),
        "recall": float(recall_score(y_true, flagged, zero_division=0)),
        "f1": float(f1_score(y_true, flagged, zero_division=0)),
        "auroc": float(roc_auc_score(y_true, scores)) if ranked else float("nan"),
        "n": len(y_true),
        "n_true": int(y_true.sum()),
        "n_flagged": int(flagged.sum()),
        "flagged_fraction": float(flagged.mean()),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }
