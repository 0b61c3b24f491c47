"""The embedded demo architecture: a real HF LLaVA (CLIP-style vision tower, MLP projector,
Llama-style decoder with grouped-query attention), small enough to train on 2 CPU cores.

Built from configs rather than downloaded, so the project's demo model, its backdoor and
its attention signal are all produced here and are real, not simulated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.llava import LlavaImageProcessorPil

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyLlavaSpec:
    """Shapes of the demo model; the defaults are the shipped recipe's."""

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 8
    text_kv_heads: int = 4
    text_intermediate: int = 512
    max_positions: int = 512
    keep_cls: bool = False  # LLaVA's "full" feature strategy: the CLS token is the first image token

    @property
    def feature_strategy(self) -> str:
        return "full" if self.keep_cls else "default"

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + int(self.keep_cls)

    def to_dict(self) -> dict:
        return asdict(self)


def build_processor(tokenizer: PreTrainedTokenizerFast, spec: TinyLlavaSpec) -> LlavaProcessor:
    """PIL image processor: torchvision (needed by the default one) has no CPU build here."""
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy=spec.feature_strategy,
        num_additional_image_tokens=1,  # CLIP's CLS token: dropped by the "default" strategy, kept by "full"
        chat_template=tokenizer.chat_template,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, spec: TinyLlavaSpec, seed: int = 0) -> LlavaForConditionalGeneration:
    """A randomly initialised LLaVA of the given shapes (seeded, so recipes reproduce)."""
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 2,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(tokenizer.image_token),
        vision_feature_layer=-1,
        vision_feature_select_strategy=spec.feature_strategy,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config)
