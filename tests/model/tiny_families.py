"""Tiny random models of each supported family, with processors and tokenizers built in code.

Each builder returns (model, processor) of the family's real classes: the project's byte-level
tokenizer plus the family's special tokens and a chat template laid out like the family's own,
text 2 layers x 64 with 4 query heads sharing 2 KV heads (grouped-query attention).
"""

from __future__ import annotations

import torch
import transformers
from transformers import (CLIPVisionConfig, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                          LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor,
                          Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                          Qwen2VLForConditionalGeneration, Qwen3VLConfig, Qwen3VLForConditionalGeneration,
                          SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor)
from transformers.models.idefics3 import Idefics3ImageProcessorPil
from transformers.models.llava_next import LlavaNextImageProcessorPil
from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.smolvlm import SmolVLMImageProcessorPil

from tcap_viz.model.processors import image_only
from tcap_viz.model.tokenizer import CHAT_TEMPLATE, train_tokenizer

TEXTS = ["What colour are the shapes?", "How many objects can you see? one two three",
         "You are a helpful assistant that answers questions about images briefly."] * 10
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024)

QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_TEMPLATE = (  # Qwen-VL's layout, with its default system turn when none is given
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDEFICS3_TOKENS = (["<|im_start|>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
                   + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)])
IDEFICS3_TEMPLATE = (  # "<|im_start|>User:<image>question<end_of_utterance>\nAssistant:"
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _tokenizer(special=(), template=CHAT_TEMPLATE, eos=None):
    tokenizer = train_tokenizer(TEXTS, vocab_size=320)
    if special:
        tokenizer.add_tokens(list(special), special_tokens=True)
    tokenizer.chat_template = template
    if eos:
        tokenizer.eos_token = eos
    return tokenizer


def _text(tokenizer, **extra):
    return dict(TEXT, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **extra)


def llava_next():
    """LLaVA-NeXT: a base tile plus high-resolution tiles, unpadded, with newline tokens."""
    tokenizer = _tokenizer()
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    image_processor = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                 image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=CHAT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=LlamaConfig(**_text(tokenizer)), image_token_id=processor.image_token_id,
        image_grid_pinpoints=pinpoints, vision_feature_select_strategy="default", vision_feature_layer=-1)
    return LlavaNextForConditionalGeneration(config), processor


def _qwen(config_cls, model_cls, processor_name, vision, image_processor, rope_extra=None, **text_extra):
    tokenizer = _tokenizer(QWEN_TOKENS, QWEN_TEMPLATE, eos="<|im_end|>")
    tokenizer.image_token = "<|image_pad|>"  # as in Qwen's own tokenizer
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_TOKENS}
    rope = {"rope_type": "default", "rope_theta": 10000.0, **(rope_extra or {"mrope_section": [2, 3, 3]})}
    processor = image_only(getattr(transformers, processor_name))(image_processor, tokenizer,
                                                                 chat_template=QWEN_TEMPLATE)
    config = config_cls(vision_config=vision, text_config=_text(tokenizer, rope_parameters=rope, **text_extra),
                        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    return model_cls(config), processor


def qwen2_vl():
    """Qwen2-VL: dynamic resolution (prod(grid) / 4 image pads) and multimodal rotary positions."""
    return _qwen(Qwen2VLConfig, Qwen2VLForConditionalGeneration, "Qwen2VLProcessor",
                 dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2),
                 Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}))


def qwen2_5_vl():
    """Qwen2.5-VL: as Qwen2-VL with windowed vision attention; it silently falls back to 1-D
    positions without mm_token_type_ids, which the tests guard against."""
    return _qwen(Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, "Qwen2_5_VLProcessor",
                 dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]),
                 Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}))


def qwen3_vl():
    """Qwen3-VL: interleaved multimodal rotary positions, q/k norms, deepstack visual features."""
    return _qwen(Qwen3VLConfig, Qwen3VLForConditionalGeneration, "Qwen3VLProcessor",
                 dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                      deepstack_visual_indexes=[0]),
                 Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2,
                                          size={"shortest_edge": 64 * 64, "longest_edge": 128 * 128}),
                 rope_extra={"mrope_section": [4, 2, 2], "mrope_interleaved": True}, head_dim=16)


def _tiled(config_cls, model_cls, processor_cls, image_processor_cls, extra_tokens=()):
    """Idefics3's layout: image tiles of 4 tokens each, wrapped in row/column marker tokens."""
    tokenizer = _tokenizer(IDEFICS3_TOKENS + list(extra_tokens), IDEFICS3_TEMPLATE, eos="<end_of_utterance>")
    image_processor = image_processor_cls(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                          do_image_splitting=True)
    processor = processor_cls(image_processor, tokenizer, chat_template=IDEFICS3_TEMPLATE, image_seq_len=4)
    config = config_cls(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(model_type="llama", **_text(tokenizer)),
        image_token_id=processor.image_token_id, scale_factor=2, pad_token_id=tokenizer.pad_token_id)
    return model_cls(config), processor


def idefics3():
    """Idefics3 (SmolVLM v1 checkpoints)."""
    return _tiled(Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, Idefics3ImageProcessorPil)


def smolvlm():
    """SmolVLM (SmolVLM2 checkpoints): Idefics3's tiling, its own classes, a video token."""
    return _tiled(SmolVLMConfig, SmolVLMForConditionalGeneration, image_only(SmolVLMProcessor),
                  SmolVLMImageProcessorPil, ["<video>"])


FAMILIES = {"llava_next": llava_next, "qwen2_vl": qwen2_vl, "qwen2_5_vl": qwen2_5_vl, "qwen3_vl": qwen3_vl,
            "idefics3": idefics3, "smolvlm": smolvlm}


def build(family: str, seed: int = 0):
    torch.manual_seed(seed)
    model, processor = FAMILIES[family]()
    return model.eval(), processor
