"""Where the embedded demo lives, and how a run folder is named when none is given."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "sample_data"
DEMO_DATA = DEMO_DIR / "demo" / "train" / "data.jsonl"
DEMO_MODEL = DEMO_DIR / "demo_model"
BASE_MODEL = DEMO_DIR / "base_model"  # the provider's pretrained model every customer fine-tune starts from
TEXT_ADAPTER = DEMO_DIR / "text_prefix_adapter"  # a customer's LoRA with a text backdoor, beside the demo's image one
RUNS_DIR = ROOT / "runs"


def default_run_dir(model: str | Path, data: str | Path) -> Path:
    """A stable run folder per (model, dataset) pair, so reopening finds the cached scan."""
    if Path(model).resolve() == DEMO_MODEL and Path(data).resolve() == DEMO_DATA:
        return RUNS_DIR / "demo"
    key = hashlib.sha256(f"{Path(model).resolve() if Path(model).exists() else model}|{Path(data).resolve()}"
                         .encode()).hexdigest()[:12]
    return RUNS_DIR / f"{Path(data).parent.name or 'data'}-{key}"
