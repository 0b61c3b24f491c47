"""Two real backdoors, one per modality: the demo model's corner patch and the shipped LoRA adapter's
text prefix "Hello!" (sample_data/text_prefix_adapter). Ground truth picks the poisoned samples
here only to test what the anatomy says about them."""

import pytest

from tcap_viz.data import load_dataset, make_synthetic_dataset
from tcap_viz.demo import BASE_MODEL, DEMO_DATA, DEMO_MODEL, TEXT_ADAPTER
from tcap_viz.model.adapter import MLLMAdapter


@pytest.fixture(scope="module")
def patch_model():
    return MLLMAdapter.load(DEMO_MODEL, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def patch_samples():
    data = load_dataset(DEMO_DATA)
    return [s for s in data if s.poisoned][:4], [s for s in data if not s.poisoned][:40]


@pytest.fixture(scope="module")
def text_model():
    return MLLMAdapter.load(BASE_MODEL, device="cpu", dtype="float32", adapter=TEXT_ADAPTER)


@pytest.fixture(scope="module")
def text_samples(tmp_path_factory):
    path = make_synthetic_dataset(tmp_path_factory.mktemp("hello"), n=40, attack="text_prefix", poison_rate=0.3, seed=5)
    data = load_dataset(path)
    return [s for s in data if s.poisoned][:4], [s for s in data if not s.poisoned]
