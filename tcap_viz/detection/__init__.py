"""detection stage of the pipeline.

Finds poisoned samples from attention profiles alone (TCAP: per-head Gaussian
mixtures, then Dawid-Skene EM over the heads' votes), next to the baselines it must beat (BYE's
attention entropy; Activation Clustering and Spectral Signatures on the answer row's hidden
states), the base model's plausibility vote (used by TCAP when the scan knows the base), and
scores them against ground truth for evaluation.
"""

from .activation_clustering import ActivationClustering
from .bye import BYEDetector
from .dawid_skene import DawidSkene
from .head_profiler import HeadMixture, HeadProfiler
from .metrics import detection_metrics
from .plausibility import PlausibilityVote
from .response_classes import dominant_response, response_classes
from .spectral_signatures import SpectralSignatures
from .tcap import COMPONENTS, PRESETS, STATISTICS, TRANSFORMS, TCAPDetector, head_statistic

__all__ = [
    "ActivationClustering",
    "BYEDetector",
    "COMPONENTS",
    "DawidSkene",
    "HeadMixture",
    "HeadProfiler",
    "PRESETS",
    "PlausibilityVote",
    "STATISTICS",
    "SpectralSignatures",
    "TCAPDetector",
    "TRANSFORMS",
    "head_statistic",
    "response_classes",
    "detection_metrics",
    "dominant_response",
]
