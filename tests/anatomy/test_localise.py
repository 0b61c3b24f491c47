from dataclasses import replace

import numpy as np
from PIL import Image

from tcap_viz.anatomy import (
    attention_summary,
    block_drop,
    masked,
    occlusion_map,
    word_deletion,
)


def test_masking_fills_one_cell_with_the_mean_colour():
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, 4:] = 200
    out = np.asarray(masked(Image.fromarray(pixels), (1, 0), grid=2))
    assert (out[4:, :4] == 100).all()  # the bottom-left cell: the image's mean
    assert (out[:4] == pixels[:4]).all() and (out[4:, 4:] == 200).all()  # the rest untouched


def test_masking_a_square_of_cells_fills_them_all_at_once():
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, 4:] = 200
    out = np.array(masked(Image.fromarray(pixels), (1, 1), grid=4, side=2))
    assert (out[2:6, 2:6] == 100).all()
    out[2:6, 2:6] = pixels[2:6, 2:6]
    assert (out == pixels).all()  # nothing outside the square


def test_masking_the_square_holding_the_demo_patch_costs_its_answer_and_elsewhere_nothing(patch_model, patch_samples):
    members, _ = patch_samples
    assert block_drop(patch_model, members[:2], (6, 6), grid=8, side=2) > 0.5
    assert abs(block_drop(patch_model, members[:2], (0, 0), grid=8, side=2)) < 0.1


def test_occlusion_finds_the_demo_patch_in_its_bottom_right_corner(patch_model, patch_samples):
    members, _ = patch_samples
    drops = occlusion_map(patch_model, members[:2], grid=4)
    assert drops.shape == (4, 4)
    assert np.unravel_index(np.argmax(drops), drops.shape) == (3, 3)
    assert drops[3, 3] > 0.5 and np.delete(drops.ravel(), 15).max() < 0.25 * drops[3, 3]


def test_word_deletion_finds_the_text_prefix(text_model, text_samples):
    members, clean = text_samples
    words = word_deletion(text_model, members[:2], clean)
    assert words.iloc[0]["word"] == "hello!" and words.iloc[0]["samples"] == 2
    assert words.iloc[0]["clean_drop"] == 0  # no clean question has it
    shared = words[(words["word"] != "hello!") & (words["samples"] == 2)]  # the wording both questions have
    assert len(shared) and (shared["clean_drop"] != 0).all()
    assert words.iloc[0]["drop"] > 0.5 and words.iloc[1]["drop"] < 0.25 * words.iloc[0]["drop"]


def test_word_deletion_leaves_out_donors_that_look_like_the_group(text_model, text_samples):
    """Poisons the detector missed carry the trigger word and give the target: as the word's clean
    reference they would hide it. Mixed with a clean answer they are a reference again."""
    members, clean = text_samples
    missed = members[2:4]  # not flagged, so among the donors
    words = word_deletion(text_model, members[:2], [*clean, *missed]).set_index("word")
    assert words.loc["hello!", "clean_drop"] == 0
    prefixed = replace(clean[0], question="Hello! " + clean[0].question)  # a clean answer with the word
    mixed = word_deletion(text_model, members[:2], [*clean, *missed, prefixed]).set_index("word")
    assert mixed.loc["hello!", "clean_drop"] != 0


def test_attention_summary_averages_the_heads_over_the_image_and_the_question(patch_model, patch_samples):
    members, _ = patch_samples
    heat, tokens = attention_summary(patch_model, members[:2], [(0, 0), (1, 3)], size=(32, 24))
    assert heat.shape == (24, 32) and (heat >= 0).all() and heat.sum() > 0
    assert list(tokens.columns) == ["token", "attention", "samples"]
    assert tokens["attention"].is_monotonic_decreasing and len(tokens) > 2
