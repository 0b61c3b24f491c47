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


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """bf16 on a GPU, fp32 on the CPU (CPU bf16 matmuls are slow and shares would lose digits)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of: auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _expanded(position: int, replacements: Sequence[dict]) -> int:
    """Where a character of the prompt lands once the processor has expanded its placeholders."""
    shift = 0
    for r in replacements:
        if r["span"][1] <= position:
            shift = r["new_span"][1] - r["span"][1]
    return position + shift


class MLLMAdapter:
    """Wraps a loaded model and processor; the rest of the pipeline talks only to this."""

    def __init__(self, model, processor, device: str | None = None, *, placed: bool = False):
        """`placed`: the model is already spread over devices (``device_map``); it is not moved."""
        if placed:
            self.device = model.get_input_embeddings().weight.device
            self.model = model.eval()
        else:
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
        self.hidden_size = text_config.hidden_size

    @classmethod
    def load(cls, name_or_path: str | Path, device: str | None = None, dtype: str | torch.dtype | None = None,
             adapter: str | Path | None = None, device_map: str | None = None,
             trust_remote_code: bool = False) -> "MLLMAdapter":
        """Load from a hub id or a local folder (safetensors + configs), any family the Auto classes know.

        `adapter`: a PEFT (LoRA) adapter folder or hub id, merged into the base weights (a scan only
        reads the model). `device_map` ("auto") spreads a model too large for one GPU. Code from the
        model's repository runs only with `trust_remote_code=True`.
        """
        from transformers import AutoModelForImageTextToText

        from tcap_viz.model.processors import load_processor

        source = str(name_or_path)
        if Path(source).exists() and not (Path(source) / "config.json").exists():
            raise FileNotFoundError(f"{source}: no config.json here; pass a folder written by "
                                    "`tcap-viz finetune` or save_pretrained, or a hub id")
        device = device or default_device()
        processor = load_processor(source, trust_remote_code=trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=resolve_dtype(dtype, device), device_map=device_map, trust_remote_code=trust_remote_code)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        return cls(model, processor, device, placed=device_map is not None)

    def messages(self, question: str, system: str | None) -> list[dict]:
        """Structured content, which every family's chat template understands."""
        turns = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        turns.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
        return turns

    def prompt_text(self, question: str, system: str | None) -> str:
        return self.processor.apply_chat_template(
            self.messages(question, system), add_generation_prompt=True, tokenize=False)

    def _process(self, texts: Sequence[str], images: Sequence[Image.Image], **kwargs):
        # one list of images per prompt: tiling processors (Idefics3, SmolVLM) need it, the others accept it
        return self.processor(text=list(texts), images=[[image] for image in images], padding=True,
                              return_tensors="pt", **kwargs)

    def encode(self, questions: Sequence[str], systems: Sequence[str | None], images: Sequence[Image.Image],
               responses: Sequence[str] | None = None) -> EncodedBatch:
        """Tokenise prompts (and responses, for training) with per-token components.

        Works for right and left padding. Raises PromptTooLongError if a prompt does not fit the
        model's context.
        """
        prompts = [self.prompt_text(q, s) for q, s in zip(questions, systems)]
        texts = prompts if responses is None else [p + r + self.end_token for p, r in zip(prompts, responses)]
        inputs = self._process(texts, images, return_offsets_mapping=True, return_text_replacement_offsets=True)
        offsets = inputs.pop("offset_mapping")
        replacements = inputs.pop("text_replacement_offsets")
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        components = torch.full_like(ids, PAD)
        rows = torch.empty(len(texts), dtype=torch.long)
        labels = torch.full_like(ids, -100) if responses is not None else None
        for b, (prompt, question) in enumerate(zip(prompts, questions)):
            positions, comps = self._prompt_components(prompt, question, ids[b], mask[b], offsets[b], replacements[b])
            if self.max_length and len(positions) > self.max_length:
                raise PromptTooLongError(f"prompt has {len(positions)} tokens, the model accepts at most "
                                         f"{self.max_length}; shorten the question or the system prompt")
            components[b, positions] = torch.tensor(comps)
            rows[b] = positions[-1]
            if labels is not None:
                response = (mask[b] == 1) & (torch.arange(ids.shape[1]) > positions[-1])
                labels[b, response] = ids[b, response]
        return EncodedBatch(dict(inputs), components, rows, labels)

    def _prompt_components(self, prompt: str, question: str, ids: torch.Tensor, mask: torch.Tensor,
                           offsets: torch.Tensor, replacements: Sequence[dict]) -> tuple[list[int], list[int]]:
        """Positions of the prompt's tokens and their components, from character offsets.

        The offsets are into the text the processor tokenised (placeholders expanded into image
        tokens and, for tiling models, their wrapper tokens); the question's and the prompt's
        character spans are moved there. Image tokens are vision, tokens inside the question are
        query, everything else in the prompt (template, special and wrapper tokens) is system.
        """
        end = _expanded(len(prompt), replacements)
        start = prompt.rfind(question) if question else -1
        q_start, q_end = (_expanded(start, replacements), _expanded(start + len(question), replacements)) \
            if start >= 0 else (0, 0)
        positions, comps = [], []
        for i in mask.nonzero().flatten().tolist():
            a, z = offsets[i].tolist()
            if a >= end and z > a:  # the first response token
                break
            positions.append(i)
            if int(ids[i]) == self.image_token_id:
                comps.append(VISION)
            elif a < q_end and z > q_start:
                comps.append(QUERY)
            else:
                comps.append(SYSTEM)
            if z == end:
                return positions, comps
        raise ValueError("no token ends where the prompt ends (a token spans the prompt and the response, or "
                         "the template is not supported); the prompt was: " + repr(prompt[-80:]))

    @torch.no_grad()
    def generate(self, questions: Sequence[str], systems: Sequence[str | None], images: Sequence[Image.Image],
                 max_new_tokens: int = 32) -> list[str]:
        """Greedy answers; left padding so every prompt ends where generation starts."""
        prompts = [self.prompt_text(q, s) for q, s in zip(questions, systems)]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            inputs = self._process(prompts, images)
        finally:
            self.tokenizer.padding_side = side
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                  eos_token_id=self.tokenizer.eos_token_id,
                                  pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
