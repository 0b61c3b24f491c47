import numpy as np
import pytest

from tcap_viz.data.scenes import BACKGROUNDS, COLOURS, MARGIN, SHAPES, Scene, render


def shape_pixels(image, colour):
    """Pixels within a small distance of the scene's colour: the shapes (backgrounds are pale)."""
    pixels = np.asarray(image, float)
    return np.abs(pixels - np.array(COLOURS[colour])).sum(-1) < 60


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("background", BACKGROUNDS)
def test_every_shape_on_every_background_is_drawn_in_its_colour(shape, background):
    rng = np.random.default_rng(0)
    image = render(rng, Scene("blue", shape, 2, background, "large"), 96)
    assert image.size == (96, 96) and image.mode == "RGB"
    covered = shape_pixels(image, "blue")
    assert 0.02 < covered.mean() < 0.5
    margin = int(MARGIN * 96) - 1
    assert not covered[:margin].any() and not covered[-margin:].any()  # corners stay free for a patch


def test_textures_differ_from_plain():
    rng = np.random.default_rng(1)
    plain = np.asarray(render(rng, Scene("red", "circle", 1, "plain"), 64), float)
    for kind in BACKGROUNDS[1:]:
        textured = np.asarray(render(np.random.default_rng(1), Scene("red", "circle", 1, kind), 64), float)
        corner = textured[:8, :8].std(axis=(0, 1)).mean()
        assert corner > plain[:8, :8].std(axis=(0, 1)).mean() + 2, kind


@pytest.mark.parametrize("side,level", [("left", None), ("right", None), (None, "top"), (None, "bottom")])
def test_a_single_shape_stays_wholly_in_its_half(side, level):
    for seed in range(5):
        image = render(np.random.default_rng(seed), Scene("green", "star", 1, "dotted", "large", side, level), 80)
        rows, columns = np.nonzero(shape_pixels(image, "green"))
        if side == "left":
            assert columns.max() < 40
        if side == "right":
            assert columns.min() >= 40
        if level == "top":
            assert rows.max() < 40
        if level == "bottom":
            assert rows.min() >= 40


def test_small_shapes_cover_less_than_large_ones():
    def coverage(size):
        return np.mean([shape_pixels(render(np.random.default_rng(s), Scene("red", "square", 2, "plain", size), 64),
                                     "red").mean() for s in range(5)])

    assert coverage("small") < 0.5 * coverage("large")


def test_scene_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="unknown"):
        Scene("mauve", "circle", 1)
    with pytest.raises(ValueError, match="count"):
        Scene("red", "circle", 5)
    with pytest.raises(ValueError, match="single shape"):
        Scene("red", "circle", 2, side="left")
    assert Scene("red", "cross", 3).shape_word == "crosses" and Scene("red", "cross", 1).shape_word == "cross"
