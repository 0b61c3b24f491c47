"""The provider's pretraining: a base model from the broad corpus, saved with its recipe."""

import json
from dataclasses import replace

from tcap_viz.data.corpus import QUESTION_TYPES
from tcap_viz.model.adapter import MLLMAdapter
from tcap_viz.model.pretrain import ATTRIBUTES, SYSTEM_PROMPTS, PretrainRecipe, pretrain
from tcap_viz.model.training import RECIPE_FILE, Schedule


def test_pretrain_saves_a_loadable_base_whose_tokenizer_covers_the_corpus(tmp_path, tiny_spec):
    short = Schedule(steps=3, batch_size=4, learning_rate=1e-3, warmup_steps=1)
    recipe = replace(PretrainRecipe(), vision=short, schedule=short, spec=tiny_spec, vocab_size=400, tokenizer_samples=200)
    out = pretrain(tmp_path / "base", recipe, show_progress=False)
    adapter = MLLMAdapter.load(out, device="cpu")
    assert adapter.num_heads == tiny_spec.text_heads
    info = json.loads((out / RECIPE_FILE).read_text())
    assert len(info["losses"]) == 3 and info["pretrain"]["spec"]["image_size"] == tiny_spec.image_size
    assert len(info["vision"]["losses"]) == 3 and set(info["vision"]["accuracy"]) == set(ATTRIBUTES)
    vocab = adapter.tokenizer.get_vocab()
    assert len(vocab) == 400
    words = {"Ġcolour", "Ġshapes", "Ġbackground"}  # frequent corpus words became single tokens
    assert words <= set(vocab)
    assert len(SYSTEM_PROMPTS) > 1 and len(QUESTION_TYPES) >= 6


def test_the_vision_stage_changes_only_the_vision_tower(tiny_adapter):
    import torch

    from tcap_viz.model.pretrain import pretrain_vision

    before = {k: v.clone() for k, v in tiny_adapter.model.state_dict().items()}
    recipe = replace(PretrainRecipe(), vision=Schedule(steps=2, batch_size=4, learning_rate=1e-2, warmup_steps=1))
    result = pretrain_vision(tiny_adapter, replace(recipe, spec=replace(recipe.spec, image_size=32)), show_progress=False)
    after = tiny_adapter.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all("vision_tower" in k for k in moved)
    assert all(0 <= a <= 1 for a in result["accuracy"].values())
