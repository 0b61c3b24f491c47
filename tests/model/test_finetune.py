"""Customer fine-tuning from a base: full, LoRA (adapter saved alone, loaded back onto the base), from scratch."""

import json

import pytest
import torch

from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.finetune import FULL_RECIPE, LORA_RECIPE, SCRATCH_RECIPE, finetune
from tcap_viz.model.training import RECIPE_FILE


def weights(adapter):
    return {k: v.clone() for k, v in adapter.model.state_dict().items()}


def changed(before, after):
    return sorted(k for k in before if not torch.equal(before[k], after[k]))


def test_full_fine_tune_starts_from_the_base_and_changes_it(tmp_path, tiny_model_dir, tiny_dataset):
    out = finetune(tiny_dataset, tmp_path / "m", FULL_RECIPE.with_overrides(steps=3, learning_rate=1e-2),
                   base=tiny_model_dir, device="cpu", show_progress=False)
    base, tuned = MLLMAdapter.load(tiny_model_dir, device="cpu"), MLLMAdapter.load(out, device="cpu")
    assert base.tokenizer.get_vocab() == tuned.tokenizer.get_vocab()  # the base's own tokenizer, not a new one
    assert len(changed(weights(base), weights(tuned))) > 10
    info = json.loads((out / RECIPE_FILE).read_text())
    assert info["kind"] == "full" and info["base"] == str(tiny_model_dir) and len(info["losses"]) == 3


def test_lora_saves_only_an_adapter_that_every_loader_applies_to_the_base(tmp_path, tiny_model_dir, tiny_dataset):
    out = finetune(tiny_dataset, tmp_path / "lora", LORA_RECIPE.with_overrides(steps=3),
                   base=tiny_model_dir, device="cpu", show_progress=False)
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", RECIPE_FILE} <= files
    assert "model.safetensors" not in files
    config = json.loads((out / "adapter_config.json").read_text())
    targets = set(config["target_modules"])
    assert {"q_proj", "v_proj", "out_proj", "fc1", "down_proj", "linear_1"} <= targets  # both towers, projector
    base = MLLMAdapter.load(tiny_model_dir, device="cpu")
    merged = MLLMAdapter.load(tiny_model_dir, device="cpu", adapter=out)
    diff = changed(weights(base), weights(merged))
    assert any("vision_tower" in k for k in diff) and any("language_model" in k for k in diff)
    assert not any("embed_tokens" in k for k in diff)  # LoRA leaves what it does not target


def test_from_scratch_trains_a_new_model_with_its_own_tokenizer(tmp_path, tiny_dataset, tiny_spec):
    from dataclasses import replace

    recipe = replace(SCRATCH_RECIPE.with_overrides(steps=2), spec=tiny_spec, vocab_size=300)
    out = finetune(tiny_dataset, tmp_path / "s", recipe, base=None, device="cpu", show_progress=False)
    assert json.loads((out / RECIPE_FILE).read_text())["kind"] == "scratch"
    assert MLLMAdapter.load(out, device="cpu").num_heads == tiny_spec.text_heads


def test_lora_needs_a_base_and_nothing_is_overwritten(tmp_path, tiny_model_dir, tiny_dataset):
    with pytest.raises(ValueError, match="needs a base"):
        finetune(tiny_dataset, tmp_path / "x", LORA_RECIPE, base=None)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        finetune(tiny_dataset, tmp_path / "taken", base=tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="--from-scratch"):
        finetune(tiny_dataset, tmp_path / "y", base=tmp_path / "no-such-base")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no half-written folder left


def test_the_same_seed_gives_the_same_model(tmp_path, tiny_model_dir, tiny_dataset):
    recipe = FULL_RECIPE.with_overrides(steps=2, seed=5)
    a = finetune(tiny_dataset, tmp_path / "a", recipe, base=tiny_model_dir, device="cpu", show_progress=False)
    b = finetune(tiny_dataset, tmp_path / "b", recipe, base=tiny_model_dir, device="cpu", show_progress=False)
    wa, wb = weights(MLLMAdapter.load(a, device="cpu")), weights(MLLMAdapter.load(b, device="cpu"))
    assert changed(wa, wb) == []
