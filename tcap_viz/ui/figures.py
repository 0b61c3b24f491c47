"""Plotly figures of the app's views: pure functions of the review session's numbers.

Kept apart from the gradio wiring so each one can be built and checked in a test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import norm
from sklearn.metrics import precision_recall_curve

from tcap_viz.detection.head_profiler import HeadMixture

COMPONENT_COLOURS = {"system": "#1f77b4", "vision": "#2ca02c", "query": "#ff7f0e"}
TARGET, BACKGROUND = "#d62728", "#7f7f7f"
DECISION_COLOURS = {"poison": "#d62728", "clean": "#2ca02c", "unsure": "#ff7f0e", "pending": "#9e9e9e"}
#: Light blue (surely clean) through orange to dark red (surely poisoned): visible on white at both ends.
POSTERIOR_SCALE = [[0, "#9ecae1"], [0.5, "#fd8d3c"], [1, "#a50f15"]]
_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=40, b=40), height=320)


def posterior_histogram(posterior: np.ndarray, threshold: float, title: str = "EM posterior of poisoning") -> go.Figure:
    """How sure EM (or the confirmation) is about each sample; the dashed line is the live flag threshold."""
    posterior = np.asarray(posterior, dtype=float)
    posterior = posterior[np.isfinite(posterior)]
    fig = go.Figure(go.Histogram(x=posterior, xbins=dict(start=0, end=1.0001, size=0.02), marker_color="#4c72b0",
                                 name="samples"))
    fig.add_vline(x=threshold, line_dash="dash", line_color=TARGET,
                  annotation_text=f"flag > {threshold:.2f}: {(posterior > threshold).sum()} samples")
    fig.update_layout(title=title, xaxis_title="posterior", yaxis_title="samples",
                      yaxis_type="log", yaxis_dtick=1, bargap=0.05, **_LAYOUT)
    counts, _ = np.histogram(posterior, bins=50, range=(0, 1))
    fig.update_yaxes(range=[-0.1, np.log10(max(counts.max(), 1)) + 0.3])  # from 1 sample up, so small bars show
    return fig


def pr_curves(truth: np.ndarray, scores: dict[str, np.ndarray]) -> go.Figure:
    """Precision-recall of each detector's score (needs ground truth)."""
    fig = go.Figure()
    for name, score in scores.items():
        score = np.asarray(score, dtype=float)
        if not np.isfinite(score).all() or truth.all() or not truth.any():
            continue
        precision, recall, _ = precision_recall_curve(truth, score)
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=name))
    fig.update_layout(title="Precision-recall<br><sup>ground truth, never seen by the detectors</sup>",
                      xaxis_title="recall", yaxis_title="precision", xaxis_range=[0, 1.02], yaxis_range=[0, 1.02],
                      **{**_LAYOUT, "margin": dict(l=50, r=20, t=60, b=40)})
    return fig


def confusion_matrix(metrics: dict, name: str) -> go.Figure:
    cells = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    fig = go.Figure(go.Heatmap(z=cells, x=["not flagged", "flagged"], y=["clean", "poisoned"], colorscale="Blues",
                               text=cells, texttemplate="%{text}", showscale=False))
    fig.update_layout(title=f"{name}: truth x flag", **{**_LAYOUT, "height": 260})
    return fig


def heads_grid(heads: pd.DataFrame, chosen: tuple[int, int] | None = None) -> go.Figure:
    """Layer x head grid of separation scores; selected heads are ringed, the chosen one starred."""
    n_layers, n_heads = int(heads["layer"].max()) + 1, int(heads["head"].max()) + 1
    score = np.zeros((n_layers, n_heads))
    score[heads["layer"], heads["head"]] = heads["separation"]
    fig = go.Figure(go.Heatmap(z=np.log10(1 + score), x=list(range(n_heads)), y=list(range(n_layers)),
                               colorscale="Viridis", colorbar_title="log10(1+SS)",
                               customdata=score, hovertemplate="L%{y}H%{x}<br>SS %{customdata:.1f}<extra></extra>"))
    selected = heads[heads["selected"].astype(bool)]
    fig.add_trace(go.Scatter(x=selected["head"], y=selected["layer"], mode="markers", name="selected",
                             marker=dict(symbol="circle-open", size=22, color=TARGET, line_width=3)))
    if chosen is not None:
        fig.add_trace(go.Scatter(x=[chosen[1]], y=[chosen[0]], mode="markers", name="shown",
                                 marker=dict(symbol="star", size=14, color="white", line=dict(color="black", width=1))))
    fig.update_layout(title="Separation score by layer and head", xaxis_title="head", yaxis_title="layer",
                      xaxis_dtick=1, yaxis_dtick=1, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def head_mixture(values: np.ndarray, mixture: HeadMixture, truth: np.ndarray | None = None,
                 title: str = "") -> go.Figure:
    """The head's normalised statistic with each fitted component (G_t red, G_b grey)."""
    fig = go.Figure()
    bins = dict(start=float(np.nanmin(values)), end=float(np.nanmax(values)) + 1e-9,
                size=max((np.nanmax(values) - np.nanmin(values)) / 60, 1e-6))
    if truth is None:
        fig.add_trace(go.Histogram(x=values, xbins=bins, histnorm="probability density", name="samples",
                                   marker_color="#4c72b0", opacity=0.6))
    else:
        for label, mask, colour in (("clean (truth)", ~truth, "#4c72b0"), ("poisoned (truth)", truth, TARGET)):
            fig.add_trace(go.Histogram(x=values[mask], xbins=bins, histnorm="probability density", name=label,
                                       marker_color=colour, opacity=0.5))
        fig.update_layout(barmode="overlay")
    grid = np.linspace(bins["start"], bins["end"], 400)
    for k in range(len(mixture.weights)):
        density = mixture.weights[k] * norm.pdf(grid, mixture.means[k], np.sqrt(mixture.variances[k]))
        target = bool(mixture.is_target[k])
        fig.add_trace(go.Scatter(x=grid, y=density, mode="lines", line_color=TARGET if target else BACKGROUND,
                                 name=f"{'G_t' if target else 'G_b'} component {k} (w={mixture.weights[k]:.2f})"))
    fig.update_layout(title=title or "Head statistic and its mixture", xaxis_title="normalised statistic",
                      yaxis_title="density", **_LAYOUT)
    return fig


def aic_by_k(aic: np.ndarray, chosen_k: int) -> go.Figure:
    ks = np.arange(1, len(aic) + 1)
    colours = [TARGET if k == chosen_k else "#4c72b0" for k in ks]
    fig = go.Figure(go.Bar(x=ks, y=aic, marker_color=colours))
    fig.update_layout(title=f"AIC by number of components (K* = {chosen_k})", xaxis_title="K", yaxis_title="AIC",
                      xaxis_dtick=1, **{**_LAYOUT, "height": 260})
    return fig


def layer_shares(shares: np.ndarray) -> go.Figure:
    """Per layer, the head-mean share of system, image and query in the answer row."""
    mean = shares.mean(axis=1)  # (L, 3)
    fig = go.Figure()
    for c, (name, colour) in enumerate(COMPONENT_COLOURS.items()):
        fig.add_trace(go.Bar(x=[f"L{l}" for l in range(len(mean))], y=mean[:, c], name=name, marker_color=colour))
    fig.update_layout(barmode="stack", title="Where the answer row looks, by layer (mean over heads)",
                      yaxis_title="share", yaxis_range=[0, 1], **{**_LAYOUT, "height": 280})
    return fig


def sample_map_figure(points: pd.DataFrame, colour_by: str) -> dict:
    """A WebGL scatter of the map as a plotly JSON dict (drawn by the page's own plotly.js)."""
    fig = go.Figure()
    if colour_by == "posterior":
        marker = dict(color=points["posterior"], colorscale=POSTERIOR_SCALE, size=6, cmin=0, cmax=1,
                      colorbar_title="posterior")
        fig.add_trace(go.Scattergl(x=points["x"], y=points["y"], mode="markers", customdata=points["id"],
                                   text=points["id"], marker=marker,
                                   hovertemplate="%{text}<br>posterior %{marker.color:.3f}<extra></extra>"))
    else:
        column = {"decision": "decision", "ground truth": "poisoned_truth", "flag": "flagged"}[colour_by]
        labels = points[column].astype(str)
        for value in sorted(labels.unique()):
            part = points[labels == value]
            colour = DECISION_COLOURS.get(value, TARGET if value == "True" else "#4c72b0")
            fig.add_trace(go.Scattergl(x=part["x"], y=part["y"], mode="markers", customdata=part["id"], text=part["id"],
                                       name=f"{colour_by}: {value}", marker=dict(color=colour, size=6),
                                       hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title="UMAP of the selected heads' profiles (lasso or box-select to filter the samples)",
                      dragmode="lasso", **{**_LAYOUT, "height": 520})
    return json.loads(fig.to_json())


def modality_bars(modality: dict) -> go.Figure:
    """phi_image, phi_text and their interaction as shares of what image and question do together."""
    shares = modality["shares"]
    names = ["image (phi_image)", "question (phi_text)", "interaction (CTI)"]
    values = [shares["image"], shares["text"], shares["interaction"]]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=[COMPONENT_COLOURS["vision"], COMPONENT_COLOURS["query"],
                                                             BACKGROUND],
                           text=[f"{v:.2f}" if np.isfinite(v) else "-" for v in values], textposition="outside"))
    fig.add_hline(y=0, line_color="#444")
    fig.update_layout(title="which modality carries the answer (shares of the effect)", yaxis_title="share",
                      yaxis_range=[min(-1.1, min((v for v in values if np.isfinite(v)), default=0) - 0.1), 1.25],
                      **_LAYOUT)
    return fig
