"""detection stage of the pipeline.

Finds poisoned samples from attention profiles alone (TCAP: per-head Gaussian
mixtures, then Dawid-Skene EM over the heads' votes), next to the BYE entropy
baseline it must beat, the base model's plausibility vote (used by TCAP when the scan knows
the base), and scores them against ground truth for evaluation.
"""

from .bye import BYEDetector
from .dawid_skene import DawidSkene
from .head_profiler import HeadMixture, HeadProfiler
from .metrics import detection_metrics
from .plausibility import PlausibilityVote
from .tcap import COMPONENTS, STATISTICS, TRANSFORMS, TCAPDetector, head_statistic

__all__ = [
    "BYEDetector",
    "COMPONENTS",
    "DawidSkene",
    "HeadMixture",
    "HeadProfiler",
    "PlausibilityVote",
    "STATISTICS",
    "TCAPDetector",
    "TRANSFORMS",
    "head_statistic",
    "detection_metrics",
]
