"""tcap-viz: find backdoor-poisoned samples in multimodal fine-tuning data.

The pipeline reads in one direction, one sub-package per stage:
data -> model -> attention -> detection -> storage -> ui.
"""

__version__ = "0.1.0"
