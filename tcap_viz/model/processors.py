"""Load a model's processor, also where its video half cannot be built.

Qwen2-VL, Qwen2.5-VL, Qwen3-VL and SmolVLM processors also hold a video processor, which needs torchvision;
without it (as on CPU-only installs of torch) `AutoProcessor` fails although a scan never sees a
video. The image-only variant drops the video processor and keeps everything else: the image
processor, tokenizer, chat template and the placeholder expansion are the stock ones.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from pathlib import Path

import transformers


@cache
def image_only(processor_cls: type) -> type:
    """`processor_cls` without its video processor (ProcessorMixin reads its parts from __init__'s signature)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        processor_cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    # the stock signature less the video processor: ProcessorMixin reads its parts and the settings
    # it saves (SmolVLM's image_seq_len, ...) from it
    stock = inspect.signature(processor_cls.__init__)
    __init__.__signature__ = stock.replace(parameters=[p for n, p in stock.parameters.items() if n != "video_processor"])

    # the same name, so that a saved processor_config.json names the stock class, as checkpoints do;
    # the generic chat template call, since SmolVLM's own reads its video processor's frame rate
    name = processor_cls.__name__
    return type(name, (processor_cls,), {"__init__": __init__, "__qualname__": name,
                                         "apply_chat_template": transformers.ProcessorMixin.apply_chat_template})


def _processor_class_name(source: str) -> str | None:
    """The processor class a local model folder names (processor_config.json, else tokenizer_config.json)."""
    for file in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = Path(source) / file
        if path.is_file():
            name = json.loads(path.read_text()).get("processor_class")
            if name:
                return name
    return None


def _saved_arguments(source: str, cls: type) -> dict:
    """The processor's own settings saved beside the model (SmolVLM's image_seq_len, ...)."""
    path = Path(source) / "processor_config.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "image_processor", "tokenizer",
                                                                   "video_processor", "chat_template"}
    return {key: value for key, value in saved.items() if key in accepted}


def load_processor(source: str, trust_remote_code: bool = False):
    """AutoProcessor, or the image-only variant of the model's processor when the video half fails."""
    try:
        processor = transformers.AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (ImportError, OSError, ValueError) as error:
        name = _processor_class_name(source)
        cls = getattr(transformers, name, None) if name else None
        if cls is None or "video_processor" not in cls.get_attributes():
            raise
        image_processor = transformers.AutoImageProcessor.from_pretrained(source)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        try:
            processor = image_only(cls)(image_processor, tokenizer, chat_template=tokenizer.chat_template,
                                        **_saved_arguments(source, cls))
        except Exception as fallback:  # the stock processor's error is the one to show; this one explains why
            raise error from fallback
    if not hasattr(processor, "image_processor"):
        raise ValueError(f"{source}: found a {type(processor).__name__} but no image processor; a scan needs the "
                         "model's full processor (processor_config.json or preprocessor_config.json)")
    return processor
