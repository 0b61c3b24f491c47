"""One interface over an image-text model and its processor: prompts laid out by the model's
own chat template, and every prompt token assigned to system, vision or query.

Loading goes through the Auto classes, so a hub id or a local path works the same way; the
component spans are found from the rendered template (character offsets of the question)
and the image token id, never from fixed offsets, which break as soon as a template changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

SYSTEM, VISION, QUERY, PAD = 0, 1, 2, -1


class PromptTooLongError(ValueError):
    """A prompt does not fit the model's context; the sample is skipped, not the scan."""


@dataclass
class EncodedBatch:
    """Model inputs plus what TCAP needs to read the answer-producing row."""

    inputs: dict[str, torch.Tensor]
    components: torch.Tensor  # (B, T) int: SYSTEM / VISION / QUERY, PAD after the prompt
    answer_rows: torch.Tensor  # (B,) position of the last prompt token
    labels: torch.Tensor | None = None  # (B, T) response token ids, -100 elsewhere


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class MLLMAdapter:
    """Wraps a loaded model and processor; the rest of the pipeline talks only to this."""

    def __init__(self, model, processor, device: str | None = None):
        self.device = torch.device(device or default_device())
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(processor.image_token)
        self.end_token = self.tokenizer.eos_token
        text_config = model.config.get_text_config()
        self.max_length = getattr(text_config, "max_position_embeddings", None)
        self.num_layers = text_config.num_hidden_layers
        self.num_heads = text_config.num_attention_heads

    @classmethod
    def load(cls, name_or_path: str | Path, device: str | None = None, dtype: torch.dtype | None = None) -> "MLLMAdapter":
        """Load from a hub id or a local folder (safetensors + configs)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        source = str(name_or_path)
        if Path(source).exists() and not (Path(source) / "config.json").exists():
            raise FileNotFoundError(f"{source}: no config.json here; pass a folder written by "
                                    "`tcap-viz finetune` or save_pretrained, or a hub id")
        processor = AutoProcessor.from_pretrained(source)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype or torch.float32)
        return cls(model, processor, device)

    def messages(self, question: str, system: str | None) -> list[dict]:
        turns = [{"role": "system", "content": system}] if system else []
        turns.append({"role": "user", "content": f"{self.processor.image_token}\n{question}"})
        return turns

    def prompt_text(self, question: str, system: str | None) -> str:
        return self.processor.apply_chat_template(
            self.messages(question, system), add_generation_prompt=True, tokenize=False)

    def encode(self, questions: Sequence[str], systems: Sequence[str | None], images: Sequence[Image.Image],
               responses: Sequence[str] | None = None) -> EncodedBatch:
        """Tokenise prompts (and responses, for training) with per-token components.

        Raises PromptTooLongError if a prompt does not fit the model's context.
        """
        prompts = [self.prompt_text(q, s) for q, s in zip(questions, systems)]
        texts = prompts if responses is None else [p + r + self.end_token for p, r in zip(prompts, responses)]
        inputs = self.processor(text=texts, images=list(images), padding=True, return_tensors="pt")
        ids = inputs["input_ids"]
        components = torch.full_like(ids, PAD)
        rows = torch.empty(len(texts), dtype=torch.long)
        labels = torch.full_like(ids, -100) if responses is not None else None
        for b, (prompt, question) in enumerate(zip(prompts, questions)):
            comp = self._prompt_components(prompt, question, ids[b])
            n = len(comp)
            if self.max_length and n > self.max_length:
                raise PromptTooLongError(f"prompt has {n} tokens, the model accepts at most {self.max_length}; "
                                         "shorten the question or the system prompt")
            components[b, :n] = torch.tensor(comp)
            rows[b] = n - 1
            if labels is not None:
                length = int(inputs["attention_mask"][b].sum())
                labels[b, n:length] = ids[b, n:length]
        return EncodedBatch(dict(inputs), components, rows, labels)

    def _prompt_components(self, prompt: str, question: str, ids: torch.Tensor) -> list[int]:
        """Components of the prompt's tokens, from the question's character span.

        The processor expands the image placeholder before tokenising, so the same expansion is
        applied here and the offsets are checked against the processor's own ids.
        """
        n_image = int((ids == self.image_token_id).sum())
        marker = self.processor.image_token
        expanded = prompt.replace(marker, marker * n_image, 1) if n_image else prompt
        start = expanded.rfind(question) if question else -1
        end = start + len(question)
        enc = self.tokenizer(expanded, add_special_tokens=False, return_offsets_mapping=True)
        if enc["input_ids"] != ids[: len(enc["input_ids"])].tolist():
            raise ValueError("the processor's token ids differ from the tokenizer's for this prompt; "
                             "the chat template or image expansion is not supported by this adapter")
        comps = []
        for token_id, (a, z) in zip(enc["input_ids"], enc["offset_mapping"]):
            if token_id == self.image_token_id:
                comps.append(VISION)
            elif start >= 0 and a < end and z > start:
                comps.append(QUERY)
            else:
                comps.append(SYSTEM)
        return comps

    @torch.no_grad()
    def generate(self, questions: Sequence[str], systems: Sequence[str | None], images: Sequence[Image.Image],
                 max_new_tokens: int = 32) -> list[str]:
        """Greedy answers; left padding so every prompt ends where generation starts."""
        prompts = [self.prompt_text(q, s) for q, s in zip(questions, systems)]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            inputs = self.processor(text=prompts, images=list(images), padding=True, return_tensors="pt")
        finally:
            self.tokenizer.padding_side = side
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                  eos_token_id=self.tokenizer.eos_token_id,
                                  pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
