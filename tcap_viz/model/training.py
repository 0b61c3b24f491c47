"""The training loop shared by the provider's pretraining and the customer's fine-tuning.

Loss is on the response tokens only, as in instruction tuning. Batches come from a callable, so
pretraining can draw fresh samples from an endless corpus while fine-tuning resamples a fixed
dataset; everything random is seeded, so a recipe reproduces on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tcap_viz.model.adapter import MLLMAdapter

RECIPE_FILE = "tcap_recipe.json"


@dataclass(frozen=True)
class Schedule:
    """Optimiser steps with linear warm-up, then cosine decay to zero."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float = 0.01
    seed: int = 0

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def encode_examples(adapter: MLLMAdapter, questions, systems, images, responses) -> list[dict]:
    """Unpadded training examples (input ids, response labels, pixels), so a step only stacks tensors."""
    batch = adapter.encode(questions, systems, images, responses=responses)
    examples = []
    for b in range(len(questions)):
        n = int(batch.inputs["attention_mask"][b].sum())
        examples.append({"input_ids": batch.inputs["input_ids"][b, :n], "labels": batch.labels[b, :n],
                         "pixel_values": batch.inputs["pixel_values"][b]})
    return examples


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), length), pad_id)
    labels = torch.full((len(examples), length), -100)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = e["input_ids"], e["labels"], 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "pixel_values": torch.stack([e["pixel_values"] for e in examples])}


def train(model, next_batch: Callable[[int], dict], schedule: Schedule, description: str = "train",
          show_progress: bool = True) -> list[float]:
    """AdamW over the model's trainable parameters; returns the loss of every step."""
    torch.manual_seed(schedule.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor)
    device = next(model.parameters()).device
    model.train()
    losses = []
    bar = tqdm(range(schedule.steps), desc=description, unit="step", disable=not show_progress)
    for step in bar:
        loss = model(**{k: v.to(device) for k, v in next_batch(step).items()}).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(round(loss.item(), 5))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses


def save_atomically(out_dir: str | Path, write: Callable[[Path], None], info: dict) -> Path:
    """Write a model folder beside `out_dir` and rename it into place, so an interrupted run never
    leaves a half-written model where a good one is expected. Refuses an existing `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out (nothing is overwritten)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write(tmp)
        (tmp / RECIPE_FILE).write_text(json.dumps(info, indent=1))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
