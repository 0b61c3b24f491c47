"""The detection benchmark: the fine-tuning-service testbed, measured the way the TCAP paper does.

    from tcap_viz.benchmark import Benchmark
    bench = Benchmark("runs/report", cases=["badnet-5", "clean"], seeds=[1])
    bench.run()                   # make-data, fine-tune, scan, retrain: each step cached under runs/report
    print(bench.report())         # markdown: detection, ablation, retraining, against the targets

It sits after the pipeline: it makes data (data), fine-tunes (model), scans (pipeline) and scores
what the detectors flagged against ground truth they never saw. Your own attacks are variants:
``Benchmark(..., variants={"faint_blend": {"attack": "blend", "attack_params": {"alpha": 0.1}}})``.
"""

from .cases import CASES, DEVELOPMENT, RATES, VARIANTS, case_names
from .report import Benchmark, render

__all__ = ["CASES", "DEVELOPMENT", "RATES", "VARIANTS", "Benchmark", "case_names", "render"]
