"""Data stage of the pipeline: datasets in the LLaVA format, backdoor attacks, synthetic data."""

from tcap_viz.data.attacks import (
    ATTACKS,
    SIG,
    Attack,
    BadNet,
    Blend,
    FTrojan,
    NoAttack,
    TextPrefix,
    TextWord,
    WaNet,
    make_attack,
    register_attack,
)
from tcap_viz.data.dataset import (
    IMAGE_PLACEHOLDER,
    Dataset,
    DatasetError,
    Sample,
    SampleError,
    load_dataset,
    load_image,
    load_images,
    make_record,
    dataset_text,
    write_dataset,
)
from tcap_viz.data.synthetic import (
    COLOURS,
    COUNT_WORDS,
    DEFAULT_TARGET,
    IMAGE_SIZE,
    QUESTION_TYPES,
    QUESTIONS,
    SHAPES,
    SIDES,
    SYSTEM_PROMPT,
    SyntheticSplits,
    draw_scene,
    make_synthetic_dataset,
    make_synthetic_splits,
    make_triggered_copy,
)

__all__ = [
    "ATTACKS", "Attack", "BadNet", "Blend", "FTrojan", "NoAttack", "SIG", "TextPrefix", "TextWord", "WaNet",
    "make_attack", "register_attack",
    "IMAGE_PLACEHOLDER", "Dataset", "DatasetError", "Sample", "SampleError", "load_dataset", "load_image", "load_images",
    "make_record", "write_dataset", "dataset_text",
    "COLOURS", "COUNT_WORDS", "DEFAULT_TARGET", "IMAGE_SIZE", "QUESTION_TYPES", "QUESTIONS", "SHAPES", "SIDES", "SYSTEM_PROMPT",
    "SyntheticSplits", "draw_scene", "make_synthetic_dataset", "make_synthetic_splits", "make_triggered_copy",
]
