"""Figures and pictures show the numbers they are given."""

import numpy as np
import pandas as pd
from PIL import Image

from tcap_viz.attention.explain import SampleAttention
from tcap_viz.detection.head_profiler import HeadMixture
from tcap_viz.model.adapter import QUERY, SYSTEM, VISION
from tcap_viz.ui import figures
from tcap_viz.ui.render import attention_picture, heatmap_overlay, token_html


def test_histogram_marks_the_threshold_and_counts_the_flags():
    fig = figures.posterior_histogram(np.array([0.0, 0.1, 0.7, 0.9, np.nan]), 0.6)
    line = fig.layout.shapes[0]
    assert line.x0 == line.x1 == 0.6
    assert "2 samples" in fig.layout.annotations[0].text


def test_mixture_figure_draws_each_component_in_its_group_colour():
    mixture = HeadMixture(weights=np.array([0.9, 0.1]), means=np.array([0.2, 0.9]), variances=np.array([0.01, 0.001]),
                          is_target=np.array([False, True]), data_min=0.0, data_max=1.0)
    values = np.r_[np.full(90, 0.2), np.full(10, 0.9)]
    fig = figures.head_mixture(values, mixture, truth=values > 0.5)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert [t.line.color for t in lines] == [figures.BACKGROUND, figures.TARGET]
    assert sum(t.type == "histogram" for t in fig.data) == 2  # the two ground-truth classes


def test_heads_grid_rings_the_selected_heads():
    heads = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "separation": [0, 5, 1000, 3],
                          "selected": [False, False, True, False]})
    fig = figures.heads_grid(heads, chosen=(0, 1))
    assert fig.data[0].z.shape == (2, 2)
    assert list(fig.data[1].x) == [0] and list(fig.data[1].y) == [1]


def test_map_figure_is_json_with_ids_for_selection():
    points = pd.DataFrame({"id": ["a", "b"], "x": [0.0, 1.0], "y": [1.0, 0.0], "posterior": [0.1, 0.9],
                           "decision": ["pending", "poison"], "poisoned_truth": [False, True], "flagged": [False, True]})
    fig = figures.sample_map_figure(points, "posterior")
    assert fig["data"][0]["customdata"] == ["a", "b"] and fig["data"][0]["type"] == "scattergl"
    by_decision = figures.sample_map_figure(points, "decision")
    assert len(by_decision["data"]) == 2


def test_heatmap_is_brightest_over_the_most_attended_patch():
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    heat = np.zeros((64, 64))
    heat[48:, :16] = 1.0
    out = np.asarray(heatmap_overlay(image, heat)).astype(int).sum(-1)
    assert out[56, 4] > out[4, 56] + 100  # bottom-left patch lit, top-right untouched
    assert out[4, 56] == 3 * 64  # the picture under it: grey, dimmed


def test_the_overlay_reads_the_same_over_a_yellow_picture():
    """Over yellow shapes the old overlay blended in: the attention is now as visible on any colour."""
    heat = np.zeros((64, 64))
    heat[:16, :16] = 1.0
    contrast = {}
    for name, colour in {"grey": (128, 128, 128), "yellow": (250, 220, 40), "blue": (20, 40, 200)}.items():
        out = np.asarray(heatmap_overlay(Image.new("RGB", (64, 64), colour), heat)).astype(int)
        cold, hot = out[40, 40], out[8, 8]
        assert cold[0] == cold[1] == cold[2]  # no colour where there is no attention
        contrast[name] = hot.sum() - cold.sum()
    assert min(contrast.values()) > 200
    faint = np.asarray(heatmap_overlay(Image.new("RGB", (64, 64), (250, 220, 40)), heat, alpha=0.2)).astype(int)
    assert faint[8, 8].sum() - faint[40, 40].sum() < contrast["yellow"]  # the opacity control works


def test_the_picture_shows_the_plain_image_beside_the_heatmap_and_a_scale():
    from tcap_viz.model.vision_layout import VisionBlock
    from tcap_viz.ui.render import BAR_HEIGHT, GAP

    image = Image.new("RGB", (200, 100), (200, 30, 30))
    comps = np.array([SYSTEM, VISION, VISION, QUERY])
    row = np.array([0.1, 0.6, 0.2, 0.1], np.float32)
    layout = [VisionBlock(np.array([[0, 1]]), (0.0, 0.0, 1.0, 1.0))]
    lit = attention_picture(image, SampleAttention(["a", "", "", "b"], comps, row[None, None], layout), row, size=80)
    assert lit.size == (2 * 80 + GAP, 40 + BAR_HEIGHT)  # the image's aspect kept, side by side
    pixels = np.asarray(lit).astype(int)
    assert (pixels[:40, :80] == (200, 30, 30)).all()  # left: the plain image
    overlay = pixels[:40, 80 + GAP:].sum(-1)
    assert overlay[20, 10] > overlay[20, 70] + 100  # right: the left token took three times the attention
    ramp = pixels[40 + 2, 80 + GAP:].sum(-1)
    assert ramp[-1] > ramp[len(ramp) // 2] > ramp[0]  # the scale runs dark to bright
    plain = attention_picture(image, SampleAttention(["a", "", "", "b"], comps, row[None, None], None), row, size=80)
    assert plain.size == (80, 40) and (np.asarray(plain) == (200, 30, 30)).all()


def test_a_group_picture_shows_a_square_masked_at_once_where_no_one_cell_costs_anything():
    from tcap_viz.ui.render import GAP, group_picture

    image = Image.new("RGB", (64, 64), (90, 90, 90))
    flat = np.zeros((8, 8))
    plain = np.asarray(group_picture(image, flat, None, size=64)).astype(int)
    boxed = np.asarray(group_picture(image, flat, None, size=64, block=(6, 6, 2), block_drop=3.0)).astype(int)
    panel = slice(64 + GAP, 2 * 64 + GAP)
    assert (boxed[:, :64] == plain[:, :64]).all()  # the example itself untouched
    assert boxed[56, panel].sum(-1)[56] > plain[56, panel].sum(-1)[56] + 100  # the square lit
    assert (boxed[:40, panel] == plain[:40, panel]).all()  # and nothing outside it
    assert (boxed[48, panel][48] == 255).all()  # its outline


def test_a_group_going_two_ways_shows_an_image_its_cells_were_masked_on():
    """A patch OR a word: the first examined sample may carry only the word, whose image has nothing where
    the card lights the patch's cell."""
    from tcap_viz.ui.render import shown_example

    group = {"examined": ["w1", "p1", "w2", "p2"], "routes": {"image": ["p1", "p2"], "text": ["w1", "w2"]}}
    assert shown_example(group) == "p1"
    assert shown_example({"examined": ["w1", "p1"], "routes": {}}) == "w1"
    assert shown_example({"examined": ["w1", "p1"]}) == "w1"  # a card stored before routes were
    assert shown_example(group | {"holders": ["p2"]}) == "p2"  # whose answer the located cell costs


def test_token_html_frames_the_parts_in_order_and_escapes_text():
    tokens = ["<s>", "sys", "img", "img", "<b>what</b>", "?"]
    comps = np.array([SYSTEM, SYSTEM, VISION, VISION, QUERY, QUERY])
    rows = np.zeros((1, 1, 6), np.float32)
    rows[0, 0] = [0.1, 0.1, 0.3, 0.3, 0.15, 0.05]
    html = token_html(SampleAttention(tokens, comps, rows), rows[0, 0])
    labels = [html.index(f">{name}</span>") for name in ("system", "image", "query")]
    assert labels == sorted(labels)
    assert "2 image tokens: 60.0% of the row" in html
    assert "&lt;b&gt;what&lt;/b&gt;" in html and "<b>what</b>" not in html


def test_the_pr_chart_title_fits_its_plot():
    """Its one long line was cut off at the plot's width; the main title is now short, the rest below."""
    truth = np.array([0, 0, 1, 1], bool)
    fig = figures.pr_curves(truth, {"TCAP": np.array([0.1, 0.2, 0.8, 0.9])})
    first_line = fig.layout.title.text.split("<br>")[0]
    assert len(first_line) <= 30 and fig.layout.margin.t >= 60


def test_a_head_not_selected_says_why():
    from types import SimpleNamespace

    from tcap_viz.ui.app import not_selected_reason

    profiler = SimpleNamespace(min_target_weight=0.01, max_target_weight=0.2, last_layers=0.5, min_agreement=0.5,
                               top_heads=8)

    def head(**changes):
        return pd.Series({"k": 2, "separation": 3.0, "candidate": True, "agreement": 0.9, **changes})

    assert "K* = 1" in not_selected_reason(head(k=1), profiler)
    assert "separation score 0" in not_selected_reason(head(separation=0.0), profiler)
    assert "outside the layers searched" in not_selected_reason(head(candidate=False), profiler)
    assert "overlaps the best head's group by 0.20" in not_selected_reason(head(agreement=0.2), profiler)
    assert "only 20% of its group are responses the base model finds implausible" in not_selected_reason(
        head(agreement=0.2), profiler, anchored=True)
    assert "8 heads with a higher separation score" in not_selected_reason(head(), profiler)


def test_why_flagged_names_the_base_models_vote_apart_from_the_heads():
    from tcap_viz.ui.app import why_markdown

    contributions = pd.DataFrame({"layer": [4, 4, -1], "head": [9, 12, -1], "vote": [1, 0, 1],
                                  "sensitivity": [0.9, 0.8, 0.99], "specificity": [0.99, 0.9, 0.99],
                                  "llr": [4.0, -0.5, 6.2]})
    text = why_markdown(contributions)
    assert "1 of 2 selected heads" in text and "base model's plausibility vote" in text
    assert "base model: implausible response (+6.2)" in text and "L4H9 (+4.0)" in text


def test_why_flagged_says_when_the_base_models_vote_decided_alone():
    from tcap_viz.ui.app import why_markdown

    alone = pd.DataFrame({"layer": [-1], "head": [-1], "vote": [1], "sensitivity": [np.nan],
                          "specificity": [np.nan], "llr": [np.nan]})
    assert "decides alone" in why_markdown(alone) and "finds this response implausible" in why_markdown(alone)
    assert "does not find" in why_markdown(alone.assign(vote=0), flagged=False)


def test_the_overview_says_which_signals_voted_and_when_nothing_coherent_was_found():
    from tcap_viz.ui.app import coherence_markdown, signals_markdown

    weights = pd.DataFrame({"layer": [0, 2, -1], "head": [3, 1, -1], "share": [0.5, 0.3, 0.2]})
    text = signals_markdown(weights)
    assert "L0H3 50%" in text and "L2H1 30%" in text and "the base model's plausibility vote 20%" in text
    assert "none" in signals_markdown(weights.iloc[:0]) and "no base model" in signals_markdown(weights.iloc[:0])
    silent = signals_markdown(weights.iloc[:0], implausible=3, vote_used=False)
    assert "finds 3 responses implausible" in silent and "left out" in silent and "no base model" not in silent
    assert "left out" not in signals_markdown(weights, implausible=100, vote_used=True)
    lone = signals_markdown(weights.iloc[:0], implausible=3, uncorroborated=True)
    assert "fewer than two of them corroborate it" in lone and "left out" in lone and "nothing is flagged" in lone
    checked = signals_markdown(weights.iloc[:0], uncorroborated=True, checked=True)
    assert "checked for a trigger" in checked and "nothing is flagged" not in checked
    assert "found no coherent group" in coherence_markdown(None, 0)
    shared = coherence_markdown(("backdoor attack!", 0.95, 0), 100, implausible=97)
    assert "share one answer: 95%" in shared and "so does a clean content group" in shared
    assert "The base model finds 97 of the 100 flagged responses implausible" in shared
    plain = coherence_markdown(("blue", 0.3, 400), 276)
    assert "do not share one answer" in plain and "clean content group" in plain and "base model" not in plain
