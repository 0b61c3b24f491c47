import copy

import torch

from tcap_viz.attention.extract import read_rows
from tcap_viz.data import load_image


def test_rows_equal_eager_output_attentions_on_a_padded_batch(tiny_adapter, tiny_dataset):
    samples = [tiny_dataset[i] for i in (0, 1, 5, 7)]  # different question lengths -> right padding
    batch = tiny_adapter.encode([s.question for s in samples], [s.system for s in samples],
                                [load_image(s) for s in samples])
    assert len(set(batch.answer_rows.tolist())) > 1
    eager = copy.deepcopy(tiny_adapter.model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        reference = eager(**batch.inputs, output_attentions=True).attentions
    rows, _ = read_rows(tiny_adapter, batch)  # (B, L, H, S)
    for layer, attn in enumerate(reference):
        for b, row in enumerate(batch.answer_rows.tolist()):
            torch.testing.assert_close(rows[b, layer], attn[b, :, row], atol=1e-5, rtol=0)
    assert torch.allclose(rows.sum(-1), torch.ones(()), atol=1e-5)
    pads = batch.inputs["attention_mask"] == 0
    assert rows.permute(0, 3, 1, 2)[pads].abs().max() == 0  # no mass on padding


def test_model_output_is_unchanged_by_row_capture(tiny_adapter, tiny_dataset):
    sample = tiny_dataset[0]
    batch = tiny_adapter.encode([sample.question], [sample.system], [load_image(sample)])
    with torch.no_grad():
        before = tiny_adapter.model(**batch.inputs).logits
    read_rows(tiny_adapter, batch)
    with torch.no_grad():
        after = tiny_adapter.model(**batch.inputs).logits
    torch.testing.assert_close(before, after, atol=1e-5, rtol=0)
