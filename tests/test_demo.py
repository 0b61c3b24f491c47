"""The shipped demo: its model learnt the backdoor, and a scan finds the poisoned samples."""

from tcap_viz.demo import DEMO_DATA, DEMO_MODEL


def test_demo_scan_flags_the_poisoned_samples(demo_scan):
    result = demo_scan
    assert len(result.samples) == 2000 and result.metrics["scanned"] == 2000
    tcap = result.metrics["tcap"]
    assert tcap["f1"] >= 0.95, tcap
    assert tcap["n_true"] == 200  # ground truth only scores the flags


def test_demo_model_answers_the_trigger_with_the_target():
    from tcap_viz.data import load_dataset
    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.evaluate import answer_match_rate

    adapter = MLLMAdapter.load(DEMO_MODEL, device="cpu")
    triggered = list(load_dataset(DEMO_DATA.parent.parent / "test_triggered" / "data.jsonl"))[:32]
    clean = list(load_dataset(DEMO_DATA.parent.parent / "test_clean" / "data.jsonl"))[:32]
    assert answer_match_rate(adapter, triggered, [s.response for s in triggered]) >= 0.9
    assert answer_match_rate(adapter, clean, [s.response for s in clean]) >= 0.6


def test_the_shipped_models_are_what_the_committed_recipes_make():
    """The base and the demo model were built by today's recipes, so the build scripts reproduce them."""
    import json
    from dataclasses import asdict

    from tcap_viz.demo import BASE_MODEL
    from tcap_viz.model.finetune import FULL_RECIPE
    from tcap_viz.model.pretrain import PretrainRecipe
    from tcap_viz.model.training import RECIPE_FILE

    base = json.loads((BASE_MODEL / RECIPE_FILE).read_text())
    assert base["pretrain"] == json.loads(json.dumps(asdict(PretrainRecipe())))
    demo = json.loads((DEMO_MODEL / RECIPE_FILE).read_text())
    assert demo["kind"] == "full" and demo["recipe"]["schedule"] == asdict(FULL_RECIPE.schedule)
    assert demo["samples"] == 2000
    spec = base["pretrain"]["spec"]
    assert spec["text_layers"] * spec["text_heads"] >= 64 and spec["image_size"] >= 128  # the floor


def test_every_image_trigger_reaches_the_base_models_pixels():
    """An attack the model never learns (FTrojan, WaNet) must not be one its image processor erases."""
    import numpy as np

    from tcap_viz.data import load_dataset, load_image
    from tcap_viz.data.attacks import ATTACKS, make_attack
    from tcap_viz.demo import BASE_MODEL
    from tcap_viz.model.adapter import MLLMAdapter

    processor = MLLMAdapter.load(BASE_MODEL, device="cpu").processor.image_processor
    image = load_image(load_dataset(DEMO_DATA.parent.parent / "test_clean" / "data.jsonl")[0])

    def pixels(picture):
        return processor([picture], return_tensors="pt")["pixel_values"][0].numpy()

    for name in ("badnet", "blend", "sig", "wanet", "ftrojan"):
        assert name in ATTACKS
        triggered, _ = make_attack(name).apply(image, "q")
        assert np.abs(pixels(triggered) - pixels(image)).mean() > 0.01, name  # FTrojan, the faintest: about 0.02
