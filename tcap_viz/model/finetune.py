"""Fine-tune the embedded LLaVA on any dataset in the project's format.

This plays the fine-tuning service: the model learns whatever the data teaches, backdoor
included. Loss is on the response tokens only, as in instruction tuning. No pretrained MLLM can
be downloaded here, so by default the model is built and trained from scratch; `base` continues
from a model already trained.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tcap_viz.data import Dataset, load_images
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.tiny_llava import TinyLlavaSpec, build_model, build_processor
from tcap_viz.model.tokenizer import train_tokenizer

RECIPE_FILE = "tcap_recipe.json"


@dataclass(frozen=True)
class FinetuneRecipe:
    """The shipped recipe (from scratch): the vision pathway needs long training with warm-up
    and cosine decay before answers depend on the image, not only on the question type."""

    steps: int = 1300
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    vocab_size: int = 512
    seed: int = 0
    spec: TinyLlavaSpec = field(default_factory=TinyLlavaSpec)  # used only when there is no base


# Continuing from an already trained model (--base): the task is known, a short run adapts it.
FROM_BASE_RECIPE = FinetuneRecipe(steps=300, learning_rate=3e-4, warmup_steps=30)


def _lr_factor(step: int, recipe: FinetuneRecipe) -> float:
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _tokenised_examples(adapter: MLLMAdapter, dataset: Dataset, chunk: int = 128) -> list[dict]:
    """Encode every readable sample once, unpadded, so training steps only stack tensors."""
    examples = []
    samples = list(dataset)
    for start in range(0, len(samples), chunk):
        kept, images, skipped = load_images(samples[start:start + chunk])
        for reason in skipped.values():
            tqdm.write(f"skipping {reason}")
        batch = adapter.encode([s.question for s in kept], [s.system for s in kept], images,
                               responses=[s.response for s in kept])
        for b in range(len(kept)):
            n = int(batch.inputs["attention_mask"][b].sum())
            examples.append({"input_ids": batch.inputs["input_ids"][b, :n], "labels": batch.labels[b, :n],
                             "pixel_values": batch.inputs["pixel_values"][b]})
    if not examples:
        raise ValueError(f"{dataset.path}: no readable sample to fine-tune on")
    return examples


def _collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), length), pad_id)
    labels = torch.full((len(examples), length), -100)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = e["input_ids"], e["labels"], 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "pixel_values": torch.stack([e["pixel_values"] for e in examples])}


def _start_model(dataset: Dataset, recipe: FinetuneRecipe, base: str | Path | None) -> MLLMAdapter:
    if base is not None:
        return MLLMAdapter.load(base, device="cpu")
    texts = [t for s in dataset for t in (s.system or "", s.question, s.response)]
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    model = build_model(tokenizer, recipe.spec, seed=recipe.seed)
    return MLLMAdapter(model, build_processor(tokenizer, recipe.spec), device="cpu")


def finetune(dataset: Dataset, out_dir: str | Path, recipe: FinetuneRecipe = FinetuneRecipe(),
             base: str | Path | None = None, show_progress: bool = True) -> Path:
    """Fine-tune `base` (or a new model) on `dataset`; save safetensors + configs to `out_dir`.

    Refuses an existing `out_dir`; writes to a temporary folder beside it and renames at the end,
    so an interrupted run never leaves a half-written model where a good one is expected.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out (nothing is overwritten)")
    torch.manual_seed(recipe.seed)
    adapter = _start_model(dataset, recipe, base)
    model, tokenizer = adapter.model, adapter.tokenizer
    examples = _tokenised_examples(adapter, dataset)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, recipe))
    generator = torch.Generator().manual_seed(recipe.seed)
    losses, started = [], time.time()
    bar = tqdm(range(recipe.steps), desc="fine-tune", unit="step", disable=not show_progress)
    for _ in bar:
        picks = torch.randint(len(examples), (recipe.batch_size,), generator=generator).tolist()
        loss = model(**_collate([examples[i] for i in picks], tokenizer.pad_token_id)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(round(loss.item(), 5))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        adapter.processor.save_pretrained(tmp)
        info = {"recipe": asdict(recipe), "base": str(base) if base else None, "dataset": str(dataset.path), "samples": len(examples),
                "seconds": round(time.time() - started, 1), "losses": losses}
        (tmp / RECIPE_FILE).write_text(json.dumps(info, indent=1))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
