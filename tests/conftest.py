"""Shared fixtures: a small synthetic dataset and a tiny random LLaVA built in code (no download), a
scanned run of them and a review session on it, and the demo scanned once."""

from __future__ import annotations

import pytest

from tcap_viz.data import load_dataset, make_synthetic_dataset

TINY_SPEC_KWARGS = dict(image_size=32, patch_size=8, vision_hidden=32, vision_layers=1, vision_heads=2,
                        text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2, text_intermediate=128)


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_data")
    return make_synthetic_dataset(out, n=40, attack="badnet", poison_rate=0.2, seed=3, image_size=32)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_data_path):
    return load_dataset(tiny_data_path)


@pytest.fixture(scope="session")
def tiny_spec():
    from tcap_viz.model.tiny_llava import TinyLlavaSpec

    return TinyLlavaSpec(**TINY_SPEC_KWARGS)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dataset):
    from tcap_viz.model.tokenizer import train_tokenizer

    return train_tokenizer([t for s in tiny_dataset for t in (s.system, s.question, s.response)], 320)


@pytest.fixture()
def tiny_adapter(tiny_tokenizer, tiny_spec):
    """A fresh random model each test, so tests that switch attention do not leak into others."""
    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.tiny_llava import build_model, build_processor

    return MLLMAdapter(build_model(tiny_tokenizer, tiny_spec, seed=1), build_processor(tiny_tokenizer, tiny_spec), "cpu")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer, tiny_spec):
    """The tiny model saved as a user would have it: a folder of safetensors and configs."""
    from tcap_viz.model.tiny_llava import build_model, build_processor

    out = tmp_path_factory.mktemp("tiny_model") / "model"
    build_model(tiny_tokenizer, tiny_spec, seed=1).save_pretrained(out)
    build_processor(tiny_tokenizer, tiny_spec).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory, tiny_model_dir):
    """A LoRA adapter on the tiny model, as PEFT saves it; random B matrices, so it is not a no-op."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("tiny_lora") / "adapter"
    lora.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def demo_copy(tmp_path_factory):
    """The shipped demo dataset copied, so tests that export never write into sample_data/."""
    import shutil

    from tcap_viz.demo import DEMO_DATA

    folder = tmp_path_factory.mktemp("demo") / "train"
    shutil.copytree(DEMO_DATA.parent, folder)
    return folder / DEMO_DATA.name


@pytest.fixture(scope="session")
def demo_scan(demo_copy, tmp_path_factory):
    """The demo model scanned over the demo dataset once per test session."""
    from tcap_viz.demo import DEMO_MODEL
    from tcap_viz.pipeline import scan

    return scan(DEMO_MODEL, demo_copy, tmp_path_factory.mktemp("demo_run") / "run", show_progress=False)

@pytest.fixture(scope="session")
def scanned_run(tiny_model_dir, tiny_data_path, tmp_path_factory):
    """A run folder whose profiles are cached, so each test's session opens it in a moment."""
    from tcap_viz.pipeline import scan

    run = tmp_path_factory.mktemp("review") / "run"
    scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    return run


@pytest.fixture()
def session(tiny_model_dir, tiny_data_path, scanned_run, tmp_path):
    from tcap_viz.pipeline import ScanConfig
    from tcap_viz.review.session import ReviewSession

    # the tiny random model separates a group in a single head; min_heads=1 lets that head vote,
    # and no confirmation (a random model has no trigger to locate), so the review paths (queue,
    # votes, why) have flags to work on
    config = ScanConfig(tcap={"min_heads": 1}, confirm=False)
    return ReviewSession(tiny_model_dir, tiny_data_path, scanned_run, config,
                         decisions=tmp_path / "decisions.sqlite").open()


@pytest.fixture(scope="session")
def two_route_data(tmp_path_factory):
    """A patch OR 'Hello!' backdoor (each poison carries one), images 64 px: the patch is one 8 x 8 cell."""
    path = make_synthetic_dataset(tmp_path_factory.mktemp("dual_or"), n=160, attack="dual_or", poison_rate=0.2, seed=4,
                                  image_size=64, target="circle", poison_question_type="shape")
    return load_dataset(path)


@pytest.fixture()
def two_route_backdoor(two_route_data, monkeypatch):
    """The dataset, with a model that learnt both routes standing in for the anatomy's scorer: the target's
    log-probability is high where the bottom-right patch or the prefix is there, low where neither is."""
    import numpy as np

    import tcap_viz.anatomy.localise
    import tcap_viz.anatomy.modality

    def score(adapter, pairs, batch_size=16):
        out = []
        for sample, image in pairs:
            corner = np.asarray(image.convert("RGB"), dtype=float)[-8:, -8:]
            patched = corner.std() > 100 and ((corner < 30) | (corner > 225)).mean() > 0.9
            prefixed = sample.question.lower().startswith("hello!")
            out.append(-0.1 if sample.response != "circle" or patched or prefixed else -3.0)
        return np.array(out)

    monkeypatch.setattr(tcap_viz.anatomy.localise, "pair_logprob", score)
    monkeypatch.setattr(tcap_viz.anatomy.modality, "pair_logprob", score)
    return two_route_data
