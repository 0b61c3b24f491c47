"""Every supported family through the same adapter: spans, row-only extraction, loading."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from tcap_viz.attention.extract import read_rows, shares_from_rows
from tcap_viz.model.adapter import PAD, QUERY, SYSTEM, VISION, MLLMAdapter
from tests.model.tiny_families import FAMILIES, build

QUESTIONS = ["What colour are the shapes?", "How many objects can you see? Count them all, one by one."]
SYSTEMS = ["You are a helpful assistant that answers questions about images briefly.", None]
QWEN = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


def images(sizes=((64, 64), (60, 40))):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def adapter_for(family, padding_side="right"):
    model, processor = build(family)
    processor.tokenizer.padding_side = padding_side
    return MLLMAdapter(model, processor, "cpu")


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_spans_cover_the_prompt_exactly_once(family, padding_side):
    adapter = adapter_for(family, padding_side)
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    ids, mask = batch.inputs["input_ids"], batch.inputs["attention_mask"]
    assert ids.shape[1] > int(mask.sum(1).min())  # the batch is padded
    for b, question in enumerate(QUESTIONS):
        comps, row = batch.components[b], int(batch.answer_rows[b])
        prompt = (mask[b] == 1).nonzero().flatten()
        assert row == int(prompt[-1])  # the last prompt token, on either padding side
        assert (comps[prompt] != PAD).all() and (comps[mask[b] == 0] == PAD).all()
        assert ((comps == VISION) == ((ids[b] == adapter.image_token_id) & (mask[b] == 1))).all()
        assert (comps == VISION).sum() >= 4
        assert adapter.tokenizer.decode(ids[b][comps == QUERY]).strip() == question
        system = adapter.tokenizer.decode(ids[b][comps == SYSTEM])
        assert (SYSTEMS[b] or "") in system


@pytest.mark.parametrize("family", FAMILIES)
def test_training_labels_start_after_the_prompt(family):
    adapter = adapter_for(family)
    responses = ["red", "three"]
    batch = adapter.encode(QUESTIONS, SYSTEMS, images(), responses)
    for b, response in enumerate(responses):
        labelled = batch.labels[b][batch.labels[b] != -100]
        assert adapter.tokenizer.decode(labelled, skip_special_tokens=True) == response
        assert int((batch.labels[b] != -100).nonzero()[0]) == int(batch.answer_rows[b]) + 1


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_rows_equal_eager_attention_and_shares_sum_to_one(family, padding_side):
    adapter = adapter_for(family, padding_side)
    adapter.encode(QUESTIONS[:1], SYSTEMS[:1], images(((50, 70),)))  # state left by an earlier batch must not leak
    read_rows(adapter, adapter.encode(QUESTIONS[:1], SYSTEMS[:1], images(((50, 70),))))
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    eager = copy.deepcopy(adapter.model)
    eager.set_attn_implementation("eager")
    for module in (eager, getattr(eager, "model", None)):  # Qwen caches rotary deltas on the module
        if hasattr(module, "rope_deltas"):
            module.rope_deltas = None
    with torch.no_grad():
        reference = eager(**batch.inputs, output_attentions=True, use_cache=False).attentions
    rows, _ = read_rows(adapter, batch)  # (B, L, H, S)
    assert rows.shape[1:3] == (adapter.num_layers, adapter.num_heads)
    for layer, attention in enumerate(reference):
        for b, row in enumerate(batch.answer_rows.tolist()):
            torch.testing.assert_close(rows[b, layer], attention[b, :, row].float(), atol=1e-5, rtol=0)
    shares = shares_from_rows(rows, batch.components)
    torch.testing.assert_close(shares.sum(-1), torch.ones(shares.shape[:-1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("family", FAMILIES)
def test_the_hidden_state_is_what_the_output_head_reads_at_the_answer_row(family, padding_side):
    """What Activation Clustering and Spectral Signatures read: the output head's input at the
    row that produces the first answer token (never a response token's): its logits are the model's there."""
    adapter = adapter_for(family, padding_side)
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    _, hidden = read_rows(adapter, batch)
    assert hidden.shape == (len(QUESTIONS), adapter.hidden_size) and hidden.dtype == torch.float32
    for module in (adapter.model, getattr(adapter.model, "model", None)):
        if hasattr(module, "rope_deltas"):
            module.rope_deltas = None
    with torch.no_grad():
        logits = adapter.model(**batch.inputs, use_cache=False).logits
        from_hidden = adapter.model.get_output_embeddings()(hidden)
    torch.testing.assert_close(from_hidden, logits[torch.arange(len(QUESTIONS)), batch.answer_rows], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", QWEN)
def test_qwen_gets_multimodal_positions(family):
    adapter = adapter_for(family)
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    types = batch.inputs["mm_token_type_ids"]  # without it Qwen2.5-VL silently uses 1-D positions
    assert torch.equal(types == 1, batch.components == VISION)


def test_a_saved_qwen_model_loads_without_a_video_processor(tmp_path):
    model, processor = build("qwen2_vl")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    adapter = MLLMAdapter.load(tmp_path, device="cpu")
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    with torch.no_grad():
        expected = model(**batch.inputs).logits
        torch.testing.assert_close(adapter.model(**batch.inputs).logits, expected)


def test_a_lora_adapter_loads_and_changes_the_output(tiny_model_dir, tiny_lora_dir, tiny_dataset):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from tcap_viz.data import load_image

    base = MLLMAdapter.load(tiny_model_dir, device="cpu")
    tuned = MLLMAdapter.load(tiny_model_dir, device="cpu", adapter=tiny_lora_dir)
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), tiny_lora_dir)
    sample = tiny_dataset[0]
    batch = base.encode([sample.question], [sample.system], [load_image(sample)])
    with torch.no_grad():
        before, after = base.model(**batch.inputs).logits, tuned.model(**batch.inputs).logits
        torch.testing.assert_close(after, reference.eval()(**batch.inputs).logits, atol=1e-5, rtol=0)
    assert (after - before).abs().max() > 1e-3


@pytest.mark.parametrize("dtype, device, expected", [
    (None, "cpu", torch.float32), ("auto", "cuda", torch.bfloat16), ("float16", "cpu", torch.float16)])
def test_dtype_defaults_to_bf16_on_a_gpu_only(dtype, device, expected):
    from tcap_viz.model.adapter import resolve_dtype

    assert resolve_dtype(dtype, device) is expected


def test_an_unknown_dtype_says_what_to_use():
    from tcap_viz.model.adapter import resolve_dtype

    with pytest.raises(ValueError, match="bfloat16"):
        resolve_dtype("bf16x", "cpu")


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_scans_a_dataset_end_to_end_and_a_sample_opens(family, tiny_data_path, tmp_path):
    from tcap_viz.review.session import ReviewSession

    model, processor = build(family)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    session = ReviewSession(tmp_path / "model", tiny_data_path, tmp_path / "run").open()
    result = session.result
    text = model.config.get_text_config()
    assert result.extraction.profiles.shape == (40, text.num_hidden_layers, text.num_attention_heads, 3)
    np.testing.assert_allclose(result.extraction.profiles.sum(-1), 1, atol=1e-5)
    assert (result.extraction.profiles[..., 1] > 0).all()  # every head sees the image tokens
    assert set(result.samples["skipped"]) == {""} and result.metrics is not None
    detail = session.detail(result.extraction.ids[0])  # what the analyst opens: full rows, heat over the image
    assert not detail.error and detail.attention.layout is not None
    heat = detail.attention.image_heat(detail.attention.rows[-1].mean(0), 40, 40)
    assert heat.sum() > 0


def test_a_device_map_places_the_model_and_the_inputs_follow(tiny_model_dir, tiny_dataset):
    from tcap_viz.attention.extract import extract_profiles

    placed = MLLMAdapter.load(tiny_model_dir, device_map="cpu")  # "auto" on a machine with GPUs
    assert placed.device == torch.device("cpu")
    reference = extract_profiles(MLLMAdapter.load(tiny_model_dir, device="cpu"), list(tiny_dataset)[:4],
                                 show_progress=False)
    np.testing.assert_allclose(extract_profiles(placed, list(tiny_dataset)[:4], show_progress=False).profiles,
                               reference.profiles, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_rows_match_fp32_and_shares_still_sum_to_one(family):
    """bf16 is the default on a GPU: the rows are computed in float32 from bf16 queries and keys."""
    adapter = adapter_for(family)
    batch = adapter.encode(QUESTIONS, SYSTEMS, images())
    full, _ = read_rows(adapter, batch)
    adapter.model.to(torch.bfloat16)
    for module in (adapter.model, getattr(adapter.model, "model", None)):
        if hasattr(module, "rope_deltas"):
            module.rope_deltas = None
    half, _ = read_rows(adapter, batch)
    assert half.dtype == torch.float32
    shares = shares_from_rows(half, batch.components)
    torch.testing.assert_close(shares.sum(-1), torch.ones(shares.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(shares, shares_from_rows(full, batch.components), atol=0.02, rtol=0)
