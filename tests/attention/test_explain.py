"""The detail view's full rows agree with what the scan stored, and are drawn over the image."""

import numpy as np

from tcap_viz.attention.explain import explain_sample
from tcap_viz.attention.extract import extract_profiles
from tcap_viz.model.adapter import QUERY, SYSTEM, VISION


def test_rows_are_distributions_whose_shares_equal_the_scans(tiny_adapter, tiny_dataset):
    sample = tiny_dataset[0]
    attention = explain_sample(tiny_adapter, sample)
    n_layers, n_heads = tiny_adapter.num_layers, tiny_adapter.num_heads
    assert attention.rows.shape == (n_layers, n_heads, len(attention.tokens))
    np.testing.assert_allclose(attention.rows.sum(-1), 1.0, atol=1e-5)
    scanned = extract_profiles(tiny_adapter, [sample], show_progress=False).profiles[0]
    np.testing.assert_allclose(attention.shares(), scanned, atol=1e-5)


def test_tokens_cover_the_prompt_and_the_image_forms_its_patch_grid(tiny_adapter, tiny_dataset, tiny_spec):
    sample = tiny_dataset[1]
    attention = explain_sample(tiny_adapter, sample)
    assert set(np.unique(attention.components)) == {SYSTEM, VISION, QUERY}
    query_text = "".join(t for t, c in zip(attention.tokens, attention.components) if c == QUERY)
    assert query_text.strip() == sample.question
    side = tiny_spec.image_size // tiny_spec.patch_size
    (block,) = attention.layout
    assert block.tokens.shape == (side, side)
    row = attention.row([(0, 0), (1, 2)])
    np.testing.assert_allclose(row, attention.rows[[0, 1], [0, 2]].mean(0))


def test_the_image_heat_keeps_the_rows_mass_on_the_image(tiny_adapter, tiny_dataset, tiny_spec):
    attention = explain_sample(tiny_adapter, tiny_dataset[1])
    row = attention.row([(1, 0)])
    side = tiny_spec.image_size // tiny_spec.patch_size
    heat = attention.image_heat(row, 6 * side, 6 * side)
    np.testing.assert_allclose(heat.sum(), row[attention.components == VISION].sum(), rtol=1e-5)
    cells = heat[::6, ::6]  # one pixel per patch: the heat is the row's mass on that patch, over its area
    np.testing.assert_allclose(cells * 36, row[attention.components == VISION].reshape(side, side), rtol=1e-5)
