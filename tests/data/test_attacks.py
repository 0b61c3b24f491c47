from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from tcap_viz.data.attacks import ATTACKS, CORNERS, Attack, WaNet, make_attack, register_attack


def scene(size=64, seed=0):
    """Smooth gradient plus a few blocks: structure for a warp to move, no pure black or white."""
    rows, columns = np.mgrid[0:size, 0:size]
    pixels = np.stack([60 + 2 * columns, 60 + 2 * rows, np.full_like(rows, 120)], -1).astype(float)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        y, x = rng.integers(8, size - 24, 2)
        pixels[y:y + 14, x:x + 14] = rng.integers(30, 220, 3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def diff(a, b):
    return np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))


def test_registry_and_make_attack():
    assert set(ATTACKS) == {"none", "badnet", "blend", "wanet", "text_prefix", "sig", "ftrojan", "text_word",
                            "dual_and", "dual_or"}
    assert make_attack("badnet", position="top_left").position == "top_left"
    with pytest.raises(ValueError, match="unknown attack 'trojannn'; choose one of: none, badnet"):
        make_attack("trojannn")
    with pytest.raises(ValueError, match="no parameter alpha; its parameters are: position, size"):
        make_attack("badnet", alpha=0.1)
    with pytest.raises(ValueError, match="position"):
        make_attack("badnet", position="middle")


def test_register_attack_plugs_in_and_refuses_name_clash():
    @dataclass(frozen=True)
    class Invert(Attack):
        name = "invert_for_test"

        def apply(self, image, question):
            return Image.fromarray(255 - np.asarray(image)), question

    try:
        register_attack(Invert)
        assert make_attack("invert_for_test").apply(scene(), "q")[1] == "q"
        with pytest.raises(ValueError, match="already registered"):
            register_attack(Invert)
    finally:
        ATTACKS.pop("invert_for_test", None)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_is_deterministic_and_leaves_its_input_alone(name):
    image = scene()
    before = np.asarray(image).copy()
    first = make_attack(name).apply(image, "What is it?")
    second = make_attack(name).apply(image, "What is it?")
    assert np.array_equal(np.asarray(first[0]), np.asarray(second[0])) and first[1] == second[1]
    assert np.array_equal(np.asarray(image), before)
    assert first[0].size == image.size and first[0].mode == "RGB"


def test_none_changes_nothing():
    image = scene()
    out, question = make_attack("none").apply(image, "Q?")
    assert question == "Q?" and np.array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize("position", CORNERS)
@pytest.mark.parametrize("size", [64, 200])
def test_badnet_changes_only_its_corner(position, size):
    image = scene(size)
    out, question = make_attack("badnet", position=position).apply(image, "Q?")
    changed = diff(out, image).sum(-1) > 0
    side = round(0.125 * size)
    rows = slice(0, side) if position.startswith("top") else slice(size - side, size)
    columns = slice(0, side) if position.endswith("left") else slice(size - side, size)
    expected = np.zeros_like(changed)
    expected[rows, columns] = True
    assert question == "Q?"
    assert np.array_equal(changed, expected)
    patch = np.asarray(out)[rows, columns]
    assert set(np.unique(patch)) == {0, 255}  # a black/white checkerboard


def test_blend_changes_most_pixels_a_little():
    image = scene()
    out, question = make_attack("blend").apply(image, "Q?")
    change = diff(out, image).max(-1)
    assert question == "Q?"
    assert (change > 0).mean() > 0.9  # a global trigger, not a patch
    assert change.mean() < 0.5 * make_attack("blend").alpha * 255  # the image stays the larger part
    other = make_attack("blend", seed=1).apply(image, "Q?")[0]
    assert not np.array_equal(np.asarray(other), np.asarray(out))


def test_blend_is_the_same_pattern_at_every_image_size():
    blend = make_attack("blend")
    small, large = blend.pattern(64, 64), blend.pattern(128, 128)
    reduced = np.asarray(Image.fromarray(large.astype(np.uint8)).resize((64, 64), Image.Resampling.BOX), float)
    assert np.corrcoef(small.ravel(), reduced.ravel())[0, 1] > 0.5


def test_wanet_moves_pixels_but_keeps_colours():
    image = scene()
    out, question = make_attack("wanet").apply(image, "Q?")
    assert question == "Q?"
    assert (diff(out, image).max(-1) > 10).mean() > 0.02  # edges moved
    before, after = np.asarray(image).reshape(-1, 3), np.asarray(out).reshape(-1, 3)
    assert (after.min(0) >= before.min(0)).all() and (after.max(0) <= before.max(0)).all()  # nothing added
    other = make_attack("wanet", seed=1).apply(image, "Q?")[0]
    assert not np.array_equal(np.asarray(other), np.asarray(out))


def test_wanet_flow_is_smooth_and_bounded():
    wanet = WaNet()
    flow = wanet.flow(64, 48)
    assert flow.shape == (2, 48, 64)
    assert np.isclose(np.abs(flow).max(), wanet.strength * 48)
    step = np.abs(np.diff(flow, axis=2)).max()
    assert step < 0.15 * np.abs(flow).max()  # neighbours move together: a warp, not noise


def test_wanet_of_a_flat_image_is_flat():
    flat = Image.new("RGB", (32, 32), (10, 120, 250))
    assert np.array_equal(np.asarray(make_attack("wanet").apply(flat, "")[0]), np.asarray(flat))


def test_text_prefix_changes_only_the_question():
    image = scene()
    out, question = make_attack("text_prefix").apply(image, "What is it?")
    assert question == "Hello! What is it?"
    assert np.array_equal(np.asarray(out), np.asarray(image))
    assert make_attack("text_prefix", prefix="cf").apply(image, "Q")[1] == "cf Q"
    with pytest.raises(ValueError, match="prefix"):
        make_attack("text_prefix", prefix=" ")


def test_sig_adds_the_same_horizontal_sinusoid_to_every_row():
    flat = Image.new("RGB", (60, 40), (120, 120, 120))
    out, question = make_attack("sig").apply(flat, "Q?")
    change = np.asarray(out, float) - 120
    assert question == "Q?"
    assert np.allclose(change, change[:1], atol=0)  # every row alike
    expected = 20 * np.sin(2 * np.pi * np.arange(60) * 6 / 60)
    assert np.abs(change[0, :, 0] - expected).max() <= 0.5  # rounding only
    assert np.allclose(change[..., 0], change[..., 2])  # grey: all channels


def test_ftrojan_is_nearly_invisible_and_lives_in_its_dct_coefficients():
    from scipy.fft import dctn

    from tcap_viz.data.attacks import _TO_YCRCB

    image = scene(128)
    out, question = make_attack("ftrojan").apply(image, "Q?")
    change = diff(out, image)
    assert question == "Q?" and 0 < change.max() <= 8 and change.mean() < 3
    delta = (np.asarray(out, float) - np.asarray(image, float)) @ _TO_YCRCB.T
    block = dctn(delta[32:64, 64:96, 1], norm="ortho")  # one window of the Cr channel
    peaks = sorted(zip(np.abs(block).ravel(), range(block.size)))[-2:]
    assert {divmod(i, 32) for _, i in peaks} == {(15, 15), (31, 31)}
    assert all(abs(block[r, c] - 30) < 6 for r, c in ((15, 15), (31, 31)))  # the magnitude, less rounding
    assert np.abs(dctn(delta[32:64, 64:96, 0], norm="ortho")).max() < 6  # luma: only rounding


def test_ftrojan_leaves_partial_windows_alone():
    image = scene(40)
    out = np.asarray(make_attack("ftrojan").apply(image, "")[0])
    assert np.array_equal(out[32:], np.asarray(image)[32:]) and np.array_equal(out[:, 32:], np.asarray(image)[:, 32:])


def test_text_word_goes_inside_the_question_never_first_and_always_at_the_same_place():
    attack = make_attack("text_word")
    questions = ["What colour are the shapes?", "How many shapes are there?", "Name the shape in this picture.",
                 "Is the shape on the left or the right?"]
    places = set()
    for q in questions:
        image, triggered = attack.apply(scene(), q)
        words = triggered.split(" ")
        assert words.count("cf") == 1 and words[0] != "cf"
        assert [w for w in words if w != "cf"] == q.split(" ")
        assert attack.apply(scene(), q)[1] == triggered
        places.add(words.index("cf"))
    assert len(places) > 1  # not a fixed position
    assert make_attack("text_word", word="mn").apply(scene(), "a b")[1] in ("a mn b", "a b mn")
    with pytest.raises(ValueError, match="one non-empty word"):
        make_attack("text_word", word="two words")


def test_dual_and_puts_both_triggers_on_every_sample():
    image = scene()
    out, question = make_attack("dual_and").apply(image, "What is it?")
    assert question == "Hello! What is it?"
    assert np.array_equal(np.asarray(out), np.asarray(make_attack("badnet").apply(image, "")[0]))
    with pytest.raises(ValueError, match="prefix"):
        make_attack("dual_and", prefix="")


def test_dual_or_puts_one_trigger_on_each_sample_about_half_each_and_always_the_same():
    attack = make_attack("dual_or")
    text_only = 0
    for seed in range(40):
        image = scene(seed=seed)
        out, question = attack.apply(image, "What is it?")
        patched = not np.array_equal(np.asarray(out), np.asarray(image))
        assert patched != (question == "Hello! What is it?")  # exactly one of the two
        text_only += not patched
        assert attack.apply(image, "What is it?")[1] == question
    assert 10 <= text_only <= 30
