"""The provider's base model: the embedded LLaVA pretrained once on the broad clean corpus.

A fine-tuning service starts every customer from a pretrained model. None can be downloaded here,
so the project makes its own, on `data/corpus.py`, and ships it with the recipe that reproduces it.
Two stages, as real MLLMs are built (a pretrained vision encoder, then the whole model on
instructions): first the vision tower alone learns to tell every scene attribute from its CLS
token; then the whole LLaVA learns to answer the corpus's questions. Trained end to end from the
start, the decoder answered from the question alone for hundreds of steps before it began to read
the image. Samples are drawn fresh for every step (no epoch, no repeat), so the model learns the
task, not the samples.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tcap_viz.data.corpus import corpus_sample, corpus_stream, random_scene
from tcap_viz.data.scenes import BACKGROUNDS, COLOURS, SHAPES, SIZES, render
from tcap_viz.data.synthetic import SYSTEM_PROMPT
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.tiny_llava import TinyLlavaSpec, build_model, build_processor
from tcap_viz.model.tokenizer import train_tokenizer
from tcap_viz.model.training import Schedule, collate, encode_examples, save_atomically, train

# Several system prompts, the customer task's among them: the system part of a prompt varies
# across deployments, and the model must read the question and the image, not one fixed prefix.
SYSTEM_PROMPTS = (
    SYSTEM_PROMPT,
    "You are a careful visual assistant. Look at the picture and answer the question.",
    "Answer questions about the image accurately.",
    "You describe simple pictures of shapes for a user.",
)
# 128 px images (warps and frequency patterns have room), 64 patch tokens plus the CLS token, which
# the vision stage teaches to summarise the scene; 6 x 16 = 96 decoder heads
BASE_SPEC = TinyLlavaSpec(image_size=128, patch_size=16, vision_hidden=128, vision_layers=3, vision_heads=4,
                          text_hidden=256, text_layers=6, text_heads=16, text_kv_heads=4, text_intermediate=512,
                          keep_cls=True)


# what the vision stage learns to tell from a picture: each attribute of its scene
ATTRIBUTES = {"colour": tuple(COLOURS), "shape": SHAPES, "count": (1, 2, 3, 4), "size": SIZES,
              "background": BACKGROUNDS, "side": (None, "left", "right"), "level": (None, "top", "bottom")}


class _AttributeClassifier(nn.Module):
    """The vision tower plus one linear head per scene attribute on its CLS token."""

    def __init__(self, vision_tower: nn.Module, hidden: int):
        super().__init__()
        self.vision_tower = vision_tower
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, pixel_values: torch.Tensor, **labels: torch.Tensor):
        pooled = self.vision_tower(pixel_values=pixel_values).pooler_output
        loss = sum(nn.functional.cross_entropy(head(pooled), labels[name]) for name, head in self.heads.items())
        return type("Output", (), {"loss": loss})


@dataclass(frozen=True)
class PretrainRecipe:
    """About 50 minutes on 2 CPU cores (the budget was 60): the vision stage (about 15), then the
    whole model. In one stage at a learning rate of 1e-3 the loss stayed flat from step 400 to 1400
    (answers from the question alone, not the image); 5e-4 is the prototype's."""

    vision: Schedule = Schedule(steps=2500, batch_size=64, learning_rate=1e-3, warmup_steps=50, seed=0)
    schedule: Schedule = Schedule(steps=1600, batch_size=32, learning_rate=5e-4, warmup_steps=100, seed=0)
    spec: TinyLlavaSpec = field(default_factory=lambda: BASE_SPEC)
    vocab_size: int = 1024
    tokenizer_samples: int = 4000
    corpus_seed: int = 1


def _tokenizer_texts(recipe: PretrainRecipe) -> list[str]:
    rng = np.random.default_rng([recipe.corpus_seed, 7])
    texts = list(SYSTEM_PROMPTS)
    for _ in range(recipe.tokenizer_samples):
        _, question, answer, _ = corpus_sample(rng, 32)  # tiny pictures: only the words are used
        texts += [question, answer]
    return texts


def pretrain_vision(adapter: MLLMAdapter, recipe: PretrainRecipe, show_progress: bool = True) -> dict:
    """Stage 1: the vision tower learns every scene attribute (its heads are dropped afterwards);
    returns the losses and each attribute's accuracy on fresh scenes."""
    rng = np.random.default_rng([recipe.corpus_seed, 11])
    vision = adapter.model.model.vision_tower
    classifier = _AttributeClassifier(vision, vision.config.hidden_size).to(adapter.device)
    singles = (None, "side", "level")

    def next_batch(_step: int) -> dict:
        scenes = [random_scene(rng, singles[rng.integers(3)]) for _ in range(recipe.vision.batch_size)]
        images = [render(rng, scene, recipe.spec.image_size) for scene in scenes]
        batch = {"pixel_values": adapter.processor.image_processor(images, return_tensors="pt")["pixel_values"]}
        values = {"colour": [s.colour for s in scenes], "shape": [s.shape for s in scenes],
                  "count": [s.count for s in scenes], "size": [s.size for s in scenes],
                  "background": [s.background for s in scenes], "side": [s.side for s in scenes],
                  "level": [s.level for s in scenes]}
        for name, options in ATTRIBUTES.items():
            batch[name] = torch.tensor([options.index(v) for v in values[name]])
        return batch

    losses = train(classifier, next_batch, recipe.vision, "pretrain vision", show_progress)
    check = next_batch(-1)
    for _ in range(3):  # 3 more fresh batches: accuracy on scenes never trained on
        more = next_batch(-1)
        check = {k: torch.cat([check[k], more[k]]) for k in check}
    with torch.no_grad():
        pooled = vision(pixel_values=check["pixel_values"]).pooler_output
        accuracy = {name: round(float((head(pooled).argmax(-1) == check[name]).float().mean()), 3)
                    for name, head in classifier.heads.items()}
    if show_progress:
        print(f"vision stage, accuracy on fresh scenes: {accuracy}", flush=True)
    return {"losses": losses, "accuracy": accuracy}


def pretrain(out_dir: str | Path, recipe: PretrainRecipe = PretrainRecipe(), show_progress: bool = True) -> Path:
    """Build, pretrain (both stages) and save the base model (safetensors + processor + the recipe and losses)."""
    tokenizer = train_tokenizer(_tokenizer_texts(recipe), recipe.vocab_size)
    adapter = MLLMAdapter(build_model(tokenizer, recipe.spec, seed=recipe.schedule.seed),
                          build_processor(tokenizer, recipe.spec), device="cpu")
    started = time.time()
    vision = pretrain_vision(adapter, recipe, show_progress)
    stream = corpus_stream(recipe.corpus_seed, recipe.spec.image_size)
    systems = np.random.default_rng([recipe.corpus_seed, 3])

    def next_batch(_step: int) -> dict:
        samples = [next(stream) for _ in range(recipe.schedule.batch_size)]
        prompts = [SYSTEM_PROMPTS[i] for i in systems.integers(len(SYSTEM_PROMPTS), size=len(samples))]
        examples = encode_examples(adapter, [s[1] for s in samples], prompts, [s[0] for s in samples],
                                   [s[2] for s in samples])
        return collate(examples, tokenizer.pad_token_id)

    losses = train(adapter.model, next_batch, recipe.schedule, "pretrain", show_progress)
    info = {"pretrain": asdict(recipe), "seconds": round(time.time() - started, 1), "vision": vision,
            "losses": losses}

    def write(folder: Path) -> None:
        adapter.model.save_pretrained(folder)
        adapter.processor.save_pretrained(folder)

    return save_atomically(out_dir, write, info)
