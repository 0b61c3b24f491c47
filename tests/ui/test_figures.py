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
    assert out[4, 56] == 3 * 128


def test_the_picture_keeps_the_images_aspect_and_shows_it_plain_without_a_layout():
    from tcap_viz.model.vision_layout import VisionBlock

    image = Image.new("RGB", (200, 100), (128, 128, 128))
    comps = np.array([SYSTEM, VISION, VISION, QUERY])
    row = np.array([0.1, 0.6, 0.2, 0.1], np.float32)
    layout = [VisionBlock(np.array([[0, 1]]), (0.0, 0.0, 1.0, 1.0))]
    lit = attention_picture(image, SampleAttention(["a", "", "", "b"], comps, row[None, None], layout), row, size=80)
    assert lit.size == (80, 40)
    pixels = np.asarray(lit).astype(int).sum(-1)
    assert pixels[20, 10] > pixels[20, 70] + 100  # the left token took three times the attention
    plain = attention_picture(image, SampleAttention(["a", "", "", "b"], comps, row[None, None], None), row, size=80)
    assert plain.size == (80, 40) and (np.asarray(plain) == 128).all()


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
