"""Customer fine-tuning: the service adapts the provider's base model to a customer's dataset.

The model learns whatever the data teaches, backdoor included. Three ways, as a service offers:
- full fine-tune of the shipped base (`sample_data/base_model`), the default;
- a PEFT LoRA adapter on the base (attention and MLP projections of both towers and the
  projector), saved alone and loaded onto the base with `--adapter` by every command;
- from scratch (a new model of the small demo size), for comparison with the first testbed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tcap_viz.data import Dataset, load_images
from tcap_viz.demo import BASE_MODEL
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.tiny_llava import TinyLlavaSpec, build_model, build_processor
from tcap_viz.model.tokenizer import train_tokenizer
from tcap_viz.model.training import Schedule, collate, encode_examples, save_atomically, train

# every linear map of attention and MLP in the vision tower (CLIP), the projector and the decoder (Llama)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "fc1", "fc2", "linear_1", "linear_2",
                "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a customer model is trained. `lora_rank` None: every weight is trained."""

    schedule: Schedule
    lora_rank: int | None = None
    lora_alpha: int = 32
    vocab_size: int = 512  # from scratch only: the tokenizer is trained on the dataset's texts
    spec: TinyLlavaSpec = field(default_factory=TinyLlavaSpec)  # from scratch only

    def with_overrides(self, steps: int | None = None, seed: int | None = None,
                       learning_rate: float | None = None, batch_size: int | None = None) -> "FinetuneRecipe":
        changes = {k: v for k, v in (("steps", steps), ("seed", seed), ("learning_rate", learning_rate),
                                     ("batch_size", batch_size)) if v is not None}
        return replace(self, schedule=replace(self.schedule, **changes))


# From scratch: the vision pathway needs long training with warm-up and cosine decay before answers
# depend on the image, not only on the question type (the first testbed's recipe, 1300 steps).
SCRATCH_RECIPE = FinetuneRecipe(Schedule(steps=1300, batch_size=32, learning_rate=5e-4, warmup_steps=100))
# From the base: the task is known; a short run adapts it (2000 samples in under 3 minutes on 2 cores).
FULL_RECIPE = FinetuneRecipe(Schedule(steps=300, batch_size=16, learning_rate=3e-4, warmup_steps=20))
# LoRA needs twice the steps (about 4 minutes for 2000 samples on 2 cores, docs/HELDOUT.md) to learn a
# 5% backdoor on more than one seed in two: 300 steps learnt BadNet at 5% on one report seed and not on
# the next, and never Blend; 600 learnt BadNet, Blend, SIG and the text prefix at 5% (docs/TESTBED.md).
# 600 steps of 8 (the same compute as 300 of 16) did not learn BadNet at all.
LORA_RECIPE = FinetuneRecipe(Schedule(steps=600, batch_size=16, learning_rate=2e-3, warmup_steps=20), lora_rank=16)


def _examples(adapter: MLLMAdapter, dataset: Dataset, chunk: int = 128) -> list[dict]:
    """Encode every readable sample once; unreadable ones are skipped with their reason."""
    examples = []
    samples = list(dataset)
    for start in range(0, len(samples), chunk):
        kept, images, skipped = load_images(samples[start:start + chunk])
        for reason in skipped.values():
            tqdm.write(f"skipping {reason}")
        if kept:
            examples += encode_examples(adapter, [s.question for s in kept], [s.system for s in kept], images,
                                        [s.response for s in kept])
    if not examples:
        raise ValueError(f"{dataset.path}: no readable sample to fine-tune on")
    return examples


def _start_model(dataset: Dataset, recipe: FinetuneRecipe, base: str | Path | None, device: str | None) -> MLLMAdapter:
    if base is not None:
        if not Path(base).exists():
            raise FileNotFoundError(f"base model {base} not found; pass --base with a model folder, or "
                                    "--from-scratch (the shipped base is rebuilt by scripts/build_base.py)")
        return MLLMAdapter.load(base, device=device, dtype="float32")
    texts = [t for s in dataset for t in (s.system or "", s.question, s.response)]
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    model = build_model(tokenizer, recipe.spec, seed=recipe.schedule.seed)
    return MLLMAdapter(model, build_processor(tokenizer, recipe.spec), device=device)


def _with_lora(model, recipe: FinetuneRecipe):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(recipe.schedule.seed)
    config = LoraConfig(r=recipe.lora_rank, lora_alpha=recipe.lora_alpha, lora_dropout=0.0,
                        target_modules=list(LORA_TARGETS))
    return get_peft_model(model, config)


def finetune(dataset: Dataset, out_dir: str | Path, recipe: FinetuneRecipe | None = None,
             base: str | Path | None = BASE_MODEL, device: str | None = None, show_progress: bool = True) -> Path:
    """Fine-tune `base` (None: a new model from scratch) on `dataset` and save it to `out_dir`.

    A full fine-tune saves a complete model (safetensors + processor); a LoRA recipe saves only the
    adapter, to be loaded onto `base`. The default recipe follows `base`. Refuses an existing
    `out_dir`, and writes beside it first, so nothing half-written is ever left in its place.
    """
    recipe = recipe or (FULL_RECIPE if base is not None else SCRATCH_RECIPE)
    if recipe.lora_rank is not None and base is None:
        raise ValueError("a LoRA adapter needs a base model to adapt; drop --from-scratch or --lora")
    if Path(out_dir).exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new --out (nothing is overwritten)")
    torch.manual_seed(recipe.schedule.seed)
    adapter = _start_model(dataset, recipe, base, device)
    examples = _examples(adapter, dataset)
    model = _with_lora(adapter.model, recipe) if recipe.lora_rank is not None else adapter.model
    pad_id = adapter.tokenizer.pad_token_id
    generator = torch.Generator().manual_seed(recipe.schedule.seed)

    def next_batch(_step: int) -> dict:
        picks = torch.randint(len(examples), (recipe.schedule.batch_size,), generator=generator).tolist()
        return collate([examples[i] for i in picks], pad_id)

    started = time.time()
    losses = train(model, next_batch, recipe.schedule, "fine-tune", show_progress)
    info = {"recipe": asdict(recipe), "base": str(base) if base is not None else None,
            "kind": "lora" if recipe.lora_rank is not None else ("full" if base is not None else "scratch"),
            "dataset": str(dataset.path), "samples": len(examples), "seconds": round(time.time() - started, 1),
            "losses": losses}

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        if recipe.lora_rank is None:
            adapter.processor.save_pretrained(folder)

    return save_atomically(out_dir, write, info)
