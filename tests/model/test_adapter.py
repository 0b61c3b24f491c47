import torch

from tcap_viz.data import load_image
from tcap_viz.model.adapter import PAD, QUERY, SYSTEM, VISION, MLLMAdapter


def _encode(adapter, samples, responses=None):
    return adapter.encode([s.question for s in samples], [s.system for s in samples],
                          [load_image(s) for s in samples], responses)


def test_components_cover_the_prompt_exactly_once(tiny_adapter, tiny_dataset, tiny_spec):
    samples = list(tiny_dataset)[:4]
    batch = _encode(tiny_adapter, samples)
    ids = batch.inputs["input_ids"]
    for b, sample in enumerate(samples):
        comps = batch.components[b]
        n = int(batch.inputs["attention_mask"][b].sum())
        assert (comps[:n] != PAD).all() and (comps[n:] == PAD).all()
        assert int(batch.answer_rows[b]) == n - 1
        assert int((comps == VISION).sum()) == tiny_spec.image_tokens
        assert ((comps == VISION) == (ids[b] == tiny_adapter.image_token_id)).all()
        query = tiny_adapter.tokenizer.decode(ids[b][comps == QUERY])
        assert query == sample.question
        system = tiny_adapter.tokenizer.decode(ids[b][comps == SYSTEM])
        assert sample.system in system and "<|assistant|>" in system


def test_without_system_prompt_template_tokens_are_system(tiny_adapter, tiny_dataset):
    sample = tiny_dataset[0]
    batch = tiny_adapter.encode([sample.question], [None], [load_image(sample)])
    comps = batch.components[0]
    assert (comps == SYSTEM).sum() > 0 and (comps == QUERY).sum() > 0


def test_training_labels_cover_only_the_response(tiny_adapter, tiny_dataset):
    samples = list(tiny_dataset)[:3]
    prompt_only = _encode(tiny_adapter, samples)
    with_response = _encode(tiny_adapter, samples, [s.response for s in samples])
    for b, sample in enumerate(samples):
        n = int(prompt_only.answer_rows[b]) + 1
        assert torch.equal(with_response.components[b, :n], prompt_only.components[b, :n])
        labelled = with_response.labels[b][with_response.labels[b] != -100]
        assert tiny_adapter.tokenizer.decode(labelled) == sample.response + tiny_adapter.end_token


def test_load_round_trip_from_a_local_folder(tiny_model_dir, tiny_dataset):
    adapter = MLLMAdapter.load(tiny_model_dir, device="cpu")
    answers = adapter.generate([tiny_dataset[0].question], [tiny_dataset[0].system], [load_image(tiny_dataset[0])], 3)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_load_refuses_a_folder_without_config(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="config.json"):
        MLLMAdapter.load(tmp_path)
