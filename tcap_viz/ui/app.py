"""The analyst app (Gradio): overview, samples, sample detail, heads, map, anatomy and triage of one run.

Every view reads a `ReviewSession`; the one thing they share is the chosen sample (the id box
in the decision bar): choosing a sample in the table, the queue or the map opens it everywhere.
Decisions go to the run's append-only SQLite log, so a refresh, a restart or a second reviewer
loses nothing. Public API names (for gradio_client) are listed in the README.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no calls home

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly  # noqa: E402

from tcap_viz.data import DatasetError, load_dataset, load_image  # noqa: E402
from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, ROOT, default_run_dir  # noqa: E402
from tcap_viz.anatomy import NO_DONORS, confirmation_summary, group_line, sample_verdict  # noqa: E402
from tcap_viz.pipeline import DETECTOR_NAMES, ScanConfig  # noqa: E402
from tcap_viz.review.session import (DECISION_FILTERS, FLAG_FILTERS, SORTABLE, ReviewSession,  # noqa: E402
                                     SampleQuery)
from tcap_viz.storage.export import RULES  # noqa: E402
from tcap_viz.ui import figures  # noqa: E402
from tcap_viz.ui.guide import guide_steps  # noqa: E402
from tcap_viz.ui.request_guards import request_guards  # noqa: E402
from tcap_viz.ui.render import TOKEN_CSS, attention_picture, group_picture, shown_example, token_html  # noqa: E402

ASSETS = ROOT / "assets"
HEATMAP_LABEL = "the image | the answer's attention over it"
NO_LAYOUT_LABEL = "image (no heatmap: this model's image-token layout is unknown; the prompt below gives the image's share)"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
TABLE_COLUMNS = ["id", "posterior", "flagged", "decision", "votes", "question", "response", "baseline_score", "skipped"]
QUEUE_COLUMNS = ["id", "posterior", "votes", "decision", "reviewer", "question", "response"]
MEAN_OF_SELECTED = "mean of the selected heads"
DEFAULT_OPACITY = 0.75
CHOOSE_A_SAMPLE = ("Choose a sample: click a row in the Samples table or the Triage queue, a point on the Map, or "
                   "type its id in the box above.")
SHORTCUT_HINT = ("Keys: p poison, c clean, u unsure, z undo, n next pending, when no text field has the focus "
                 "(Esc leaves a field).")
DETAIL_TAB, SAMPLES_TAB = "sample", "samples"
ANATOMY_INTRO = (
    "The flagged samples in groups by the answer they share: a backdoor makes its poisons give one target "
    "answer, so each group is one thing to judge, not hundreds. For each group the model is asked again, on a "
    "dozen of its samples: does its answer come from the **image** or the **question** (the image swapped for a "
    "clean sample's, the question for the nearest clean question), and **where** (each cell of the image masked "
    "in turn, each word of the question deleted). Once it is located, **who else** carries the same patch or word "
    "is looked up in every sample, flagged or not: poisons the detector missed share the trigger. The first time takes seconds to a minute per group; then it is "
    "cached with the run. A group decision gives every sample of the group its own entry in the log; Undo takes "
    "the whole group back.")
#: The anatomy's question words as the card shows them (``word_deletion``).
WORD_COLUMNS = ["word", "drop", "clean_drop", "samples"]
NO_GROUPS = "Nothing is flagged at this threshold: there is no group to describe."
PRIVATE = {"api_visibility": "private"}  # wiring between views, not part of the public API


def _head_label(layer: int, head: int) -> str:
    if layer < 0:  # the annotator that is not a head (TCAPDetector.head_contributions)
        return "base model: implausible response"
    return f"L{layer}H{head}"


def _parse_head(label: str) -> tuple[int, int]:
    layer, head = label[1:].split("H")
    return int(layer), int(head)


def _reviewer(typed: str, request: gr.Request | None) -> str:
    """The login name when the app has one, else the name typed in the decision bar."""
    name = getattr(request, "username", None) if request is not None else None
    return name or (typed or "").strip()


# -- text blocks ---------------------------------------------------------------------------------
def summary_markdown(session: ReviewSession, threshold: float) -> str:
    result, counts = session.result, session.counts(threshold)
    heads = ", ".join(_head_label(l, h) for l, h in session.selected_heads()) or "none"
    lines = [f"**Model** `{session.model}`  \n**Dataset** `{session.data}` ({counts['samples']} samples)  \n"
             f"**Run** `{result.run.path}`",
             f"Scanned {counts['samples'] - counts['skipped']}, skipped {counts['skipped']}, "
             f"**flagged {counts['flagged']}** (posterior > {threshold:.4g}). Selected heads: {heads}.",
             "Review of the flagged samples: "
             + ", ".join(f"{name} {counts[name]}" for name in ("poison", "clean", "unsure", "pending"))
             + (f"; {counts['decided outside the flagged set']} decided outside the flagged set"
                if counts["decided outside the flagged set"] else "") + "."]
    tcap, table = result.tcap, session.table(threshold)
    vote = tcap.plausibility_
    lines.append(signals_markdown(tcap.signal_weights(), None if vote is None else int(vote.sum()), tcap.vote_used_,
                                  tcap.uncorroborated_, checked=result.confirmation is not None))
    if result.confirmation is not None:
        lines.append(confirmation_summary(result.confirmation))
    implausible = (int(table.loc[table["flagged"], "implausible"].fillna(False).astype(bool).sum())
                   if "implausible" in table else None)
    lines.append(coherence_markdown(session.dominant_response(threshold), counts["flagged"], implausible))
    skipped = result.samples[result.samples["skipped"] != ""]
    if len(skipped):
        lines.append("Skipped samples (first 5): " + "; ".join(f"`{i}`: {r}" for i, r in skipped[["id", "skipped"]]
                                                               .head(5).values))
    return "\n\n".join(lines)


def signals_markdown(weights: pd.DataFrame, implausible: int | None = None, vote_used: bool = False,
                     uncorroborated: bool = False, checked: bool = False) -> str:
    """Which signals voted in the EM and how much each weighed (their share of the total weight), and
    why the base model's plausibility vote did not, when the scan had it; `uncorroborated`: heads
    singled out a group that fewer than two of them corroborate; `checked`: each head's group was then
    judged by the trigger it hangs on (the confirmation)."""
    unused = "" if implausible is None or vote_used else (
        f" The base model finds {implausible} responses implausible: not a share a poisoned group would have "
        "(1% to 20% of the samples), so its vote was left out and the heads chose on their own.")
    if weights.empty and uncorroborated:
        return ("**Signals:** none. Heads single out a group, but fewer than two of them corroborate it (each "
                "catching most of it and little else): one head's split, or heads on wider groups it sits in, is "
                + ("not a finding by itself, so each head's group was checked for a trigger (the confirmation below)."
                   if checked else "not a finding, so nothing is flagged.") + unused)
    if weights.empty:
        return ("**Signals:** none. No group of heads agrees on a separated minority"
                + (" and the scan had no base model to judge the responses (`--adapter`, or `--base-model` for a full "
                   "fine-tune)." if implausible is None else ".") + unused)
    parts = [f"{'the base model' + chr(39) + 's plausibility vote' if r.layer < 0 else _head_label(r.layer, r.head)} "
             f"{r.share:.0%}" for r in weights.itertuples()]
    return ("**Signals that voted** (share of the weight in the posterior; a signal's weight is how far its vote moves "
            "a sample's log-odds): " + ", ".join(parts) + "." + unused)


def coherence_markdown(dominant: tuple[str, float, int] | None, n_flagged: int,
                       implausible: int | None = None) -> str:
    """Says plainly when the run found no coherent group (nothing flagged, or flagged samples that do
    not share an answer), and what a shared answer does and does not prove."""
    if dominant is None:
        return "**This run found no coherent group of suspicious samples: nothing is flagged.**"
    response, share, outside = dominant
    base = ("" if implausible is None else
            f" The base model finds {implausible} of the {n_flagged} flagged responses implausible.")
    if share >= 0.5:
        return (f"The flagged samples share one answer: {share:.0%} of them answer \"{response}\" ({outside} more "
                "times in the rest of the data). A backdoor's target looks like this, and so does a clean content "
                f"group the heads single out (every colour question answered blue, say): check a few images.{base}")
    return (f"**The {n_flagged} flagged samples do not share one answer** (the most common, \"{response}\", is "
            f"{share:.0%} of them and occurs {outside} more times in the rest): this looks like a clean content group "
            f"rather than a backdoor's target. Open a few before trusting the flags.{base}")


def metrics_markdown(metrics: dict | None) -> str:
    if metrics is None:
        return "The dataset has no `poisoned` labels, so there is no evaluation: the flags are the detector's alone."
    rows = ["**Evaluation against ground-truth labels the detectors never saw** (labels are read only here).", "",
            "| detector | precision | recall | F1 | AUROC | flagged |", "|---|---|---|---|---|---|"]
    for name, label in DETECTOR_NAMES.items():
        if name in metrics:
            m = metrics[name]
            rows.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['auroc']:.3f} | "
                        f"{m['n_flagged']} |")
    return "\n".join(rows)


def sample_markdown(detail) -> str:
    row = detail.row
    posterior = "n/a (skipped)" if pd.isna(row["posterior"]) else f"{row['posterior']:.4f}"
    lines = [f"### Sample `{detail.sample.id}`",
             f"**Posterior** {posterior} · **flagged** {bool(row['flagged'])} · **decision** {row['decision']}"
             + (f" by {row['reviewer']}" if row["reviewer"] else ""),
             f"**System** {detail.sample.system or '(none)'}", f"**Question** {detail.sample.question}",
             f"**Response** {detail.sample.response}"]
    if "poisoned_truth" in row:
        lines.append(f"<span class='tcap-muted'>Ground truth (evaluation only): "
                     f"{'poisoned' if row['poisoned_truth'] else 'clean'}</span>")
    if detail.error:
        lines.append(f"**Cannot show attention:** {detail.error}")
    return "\n\n".join(lines)


def why_markdown(contributions: pd.DataFrame, flagged: bool = True, threshold: float = 0.5) -> str:
    if contributions.empty:
        return ("No group of heads agrees on a separated minority (fewer than `min_heads` heads were selected), "
                "so no head voted: nothing is flagged in this run.")
    top = contributions.sort_values("llr", ascending=False)
    voting = top[top["vote"] == 1]
    title = "**Why flagged:**" if flagged else f"**Not flagged** (posterior at or below {threshold:.4g}):"
    if (top["layer"] < 0).all():  # fewer heads than min_heads agreed with the plausibility vote: it decided alone
        verdict = "finds" if top["vote"].iloc[0] == 1 else "does not find"
        return (f"{title} no selected heads agreed with the base model's plausibility vote, so it decides alone: "
                f"the base model {verdict} this response implausible.")
    if voting.empty:
        return f"{title} no selected head put this sample in its trigger-responsive group."
    names = ", ".join(f"{_head_label(r.layer, r.head)} (+{r.llr:.1f})" for r in voting.itertuples())
    heads = top[top["layer"] >= 0]
    base = "" if len(heads) == len(top) else " (and the base model's plausibility vote)"
    return (f"{title} {int((heads['vote'] == 1).sum())} of {len(heads)} selected heads put this sample in their "
            f"separated minority group{base}; each vote adds its log-likelihood ratio to the log-odds: {names}.")


def not_selected_reason(info: pd.Series, profiler, anchored: bool = False) -> str:
    """Why the heads view's head was not chosen to vote, in the selection's own order of tests;
    `anchored`: heads were chosen by agreement with the plausibility vote, not with the best head."""
    if info["k"] <= 1:
        return "one Gaussian fits its statistic best (K* = 1): the samples form no separate group"
    if not info["separation"] > 0:
        return (f"no component of its mixture is a small group ({profiler.min_target_weight:.0%} to "
                f"{profiler.max_target_weight:.0%} of the samples) well apart from the rest (separation score 0)")
    if not info["candidate"]:
        return f"its layer is outside the layers searched (the last {profiler.last_layers:.0%}, `last_layers`)"
    if pd.notna(info["agreement"]) and info["agreement"] < profiler.min_agreement:
        if anchored:
            return (f"only {info['agreement']:.0%} of its group are responses the base model finds implausible, under "
                    f"{profiler.min_agreement:.0%} (`min_agreement`): it reacts to other samples")
        return (f"its group overlaps the best head's group by {info['agreement']:.2f}, under "
                f"{profiler.min_agreement} (`min_agreement`): it reacts to other samples")
    return f"{profiler.top_heads} heads with a higher separation score were chosen first (`top_heads`)"


GLOSSARY = """
- **Components**: the answer-producing position's attention, split three ways: the *system* instruction,
  the *image* tokens and the user's *query*. A trigger pulls attention towards where it sits.
- **Head statistic**: one head's share for a component over every sample; a head that reacts to a
  trigger puts the triggered samples apart from the rest.
- **Mixture, K\\***: one to five Gaussians are fitted to each head's statistic; K* is the number the
  **AIC** (fit minus a penalty per parameter; lower is better) picks.
- **G_t / G_b** (target / bulk group): a small mixture component well apart from the rest is the head's
  candidate trigger group G_t; everything else is the bulk G_b.
- **Separation score (SS)**: how far G_t sits from G_b, in units of their spread; 0 when no small,
  separated group exists. Heads are ranked by it.
- **Votes and EM**: each selected head votes "in G_t" or not; an EM (Dawid-Skene) model learns how
  reliable each head is (sensitivity, specificity) and turns the votes into a **posterior** poison
  probability per sample. A vote adds its **log-likelihood ratio** (llr) to the log-odds.
- **Plausibility vote** (when the scan knows the base model: `--adapter`, or `--base-model`): the base
  model, which never saw the poison, finds a response far less likely than the rest; heads are then
  chosen by agreement with it, and it votes in the EM beside them.
- **BYE**: the baseline of another paper: the entropy of the image attention; it flags low entropy.
"""


# -- the app -------------------------------------------------------------------------------------
def private_temp_dir() -> Path:
    """Gradio's file cache for this process: a folder of its own (owner-only), not the machine-wide
    /tmp/gradio that every Gradio app shares and serves from (a file another app put there was
    served by this one). GRADIO_TEMP_DIR, when the user set it, is kept."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="tcap-viz-gradio-")
    return Path(os.environ["GRADIO_TEMP_DIR"])


def glossary() -> None:
    """The method's terms, folded, where the views use them."""
    with gr.Accordion("What the terms mean", open=False):
        gr.Markdown(GLOSSARY)


def build_app(session: ReviewSession) -> gr.Blocks:
    """The Blocks of the app for one session; `launch` serves it."""
    private_temp_dir()  # before any component: each takes its cache folder when it is made
    gr.set_static_paths([PLOTLY_JS])

    def page(q: SampleQuery, threshold: float):
        rows, total = session.query(q, threshold)
        first = q.page * q.page_size
        label = f"samples {first + 1 if total else 0}-{first + len(rows)} of {total}" + (
            f" (selection of {len(q.ids)})" if q.ids is not None else "")
        columns = TABLE_COLUMNS + [c for c in ("implausible", "base_logprob") if c in rows]
        return gr.Dataframe(value=rows[columns].round(4), label=label)

    def make_query(lo, hi, flag, decision, split, text, sort_by, descending, page_no, map_ids):
        """Empty fields (a cleared number box, an untouched search) mean 'no filter'."""
        return SampleQuery(min_posterior=0.0 if lo is None else lo, max_posterior=1.0 if hi is None else hi,
                           flag=flag or "all", decision=decision or "all", split=split or "all", text=text or "",
                           ids=frozenset(map_ids) if map_ids else None, sort_by=sort_by or "posterior",
                           descending=bool(descending), page=max(int(page_no or 1) - 1, 0))

    def overview(threshold):
        metrics = session.metrics(threshold)
        hist = figures.posterior_histogram(session.table(threshold)["posterior"].to_numpy(), threshold,
                                           "EM posterior of poisoning" if session.result.confirmation is None else
                                           "Posterior after the confirmation (README: Confirmation)")
        pr = cm_tcap = cm_base = None
        if metrics is not None:
            pr = figures.pr_curves(metrics["truth"], {"TCAP posterior": metrics["tcap_score"],
                                                      "BYE (low entropy)": metrics["baseline_score"]})
            cm_tcap = figures.confusion_matrix(metrics["tcap"], "TCAP")
            cm_base = figures.confusion_matrix(metrics["baseline"], "BYE baseline")
        common = session.common_responses(threshold)
        common["share of flagged"] = [f"{share:.1%}" for share in common["share of flagged"]]
        return (summary_markdown(session, threshold), hist, common, metrics_markdown(metrics), pr, cm_tcap, cm_base)

    def open_run(progress=gr.Progress()):
        progress(0, desc="loading the run (scanning if it is not cached)")
        try:
            session.open(on_progress=lambda done, total: progress(done / total, desc="extracting attention"),
                         on_confirm=lambda done, total: progress(
                             done / total, desc=f"confirming what the heads flagged: {done} of {total} steps"))
        except DatasetError as err:
            raise gr.Error(str(err), duration=None) from None
        threshold = session.default_threshold
        table = session.result.heads
        heads = [MEAN_OF_SELECTED] + [_head_label(l, h) for l, h in sorted(zip(table["layer"], table["head"]))]
        by_score = [(f"{_head_label(r.layer, r.head)}{' (selected)' if r.selected else ''}  SS {r.separation:.1f}",
                     _head_label(r.layer, r.head)) for r in table.sort_values("separation", ascending=False).itertuples()]
        return (gr.Slider(value=threshold), *overview(threshold), page(SampleQuery(), threshold),
                gr.Dropdown(choices=heads, value=MEAN_OF_SELECTED), gr.Dropdown(choices=by_score, value=by_score[0][1]),
                gr.Dropdown(choices=["all", *session.splits()], value="all"), queue_view(threshold),
                gr.Dropdown(choices=[c for c in SORTABLE if c != "base_logprob" or c in session.result.samples],
                            value="posterior"))

    def detail(sample_id, head_choice, threshold, opacity=DEFAULT_OPACITY):
        sample_id = (sample_id or "").strip()
        hidden = gr.Column(visible=False)
        if not sample_id:
            return CHOOSE_A_SAMPLE, None, "", None, "", None, hidden
        try:
            d = session.detail(sample_id, threshold)
        except KeyError:  # a typo: say so here, and leave every other view as it was
            return (f"No sample `{sample_id}` in this dataset; check the id, or find it in the Samples tab "
                    "(the search box matches ids).", None, "", None, "", None, hidden)
        if d.attention is None:  # skipped or unreadable: sample_markdown says why
            return sample_markdown(d), None, "", None, "", None, hidden
        heads = session.selected_heads() if head_choice == MEAN_OF_SELECTED else [_parse_head(head_choice)]
        if not heads:  # nothing selected: show the mean of every head of the last layer
            heads = [(d.attention.rows.shape[0] - 1, h) for h in range(d.attention.rows.shape[1])]
        row = d.attention.row(heads)
        image = gr.Image(attention_picture(d.image, d.attention, row, alpha=opacity),
                         label=HEATMAP_LABEL if d.attention.layout is not None else NO_LAYOUT_LABEL)
        return (sample_markdown(d), image, token_html(d.attention, row), figures.layer_shares(d.attention.shares()),
                "\n\n".join(filter(None, [why_markdown(d.contributions, bool(d.row["flagged"]), threshold),
                                         session.result.confirmation and sample_verdict(session.result.confirmation,
                                                                                         d.sample.id)])),
                d.contributions.round(4),
                gr.Column(visible=True))

    def head_view(choice, overlay_truth):
        layer, head = _parse_head(choice)
        view = session.head_view(layer, head)
        info = view.info
        truth = view.truth if overlay_truth else None
        anchored = session.result.tcap.vote_used_ and session.result.tcap.anchor_on_plausibility
        sens = "" if pd.isna(info["sensitivity"]) else (f", EM sensitivity {info['sensitivity']:.3f}, "
                                                         f"specificity {info['specificity']:.3f}")
        text = (f"**{_head_label(layer, head)}**: K* = {info['k']}, separation score {info['separation']:.1f}, "
                f"target weight {info['target_weight']:.3f}, gap {info['gap']:.2f}; "
                + (f"selected{sens}." if info["selected"] else
                   f"not selected: {not_selected_reason(info, session.result.tcap.profiler_, anchored)}."))
        aic = [info[f"aic_{k}"] for k in range(1, 100) if f"aic_{k}" in info]
        title = f"{_head_label(layer, head)}: statistic and mixture"
        return (figures.heads_grid(session.result.heads, (layer, head)),
                figures.head_mixture(view.values, view.mixture, truth, title), figures.aic_by_k(aic, int(info["k"])), text)

    def queue_view(threshold):
        queue = session.queue(threshold)
        decided = int((queue["decision"] != "pending").sum())
        label = f"triage queue: {decided} of {len(queue)} flagged samples decided"
        return gr.Dataframe(value=queue[QUEUE_COLUMNS].round(4), label=label)

    def decide(decision):
        def handler(sample_id, typed_reviewer, note, threshold, request: gr.Request):
            reviewer = _reviewer(typed_reviewer, request)
            if not (sample_id or "").strip():
                raise gr.Error("choose a sample first")
            try:
                session.decide(sample_id.strip(), decision, reviewer, note or "")
            except (KeyError, ValueError) as err:
                raise gr.Error(str(err).strip("'\"")) from None
            return f"`{sample_id}` marked **{decision}** by {reviewer}.", "", queue_view(threshold)
        return handler

    def undo(typed_reviewer, threshold, request: gr.Request):
        reviewer = _reviewer(typed_reviewer, request)
        undone = session.undo_decisions(reviewer)
        status = (f"{reviewer} has nothing to undo." if not undone else
                  f"undid {reviewer}'s decision on `{undone[0]}`." if len(undone) == 1 else
                  f"undid {reviewer}'s group decision on {len(undone)} samples.")
        return status, queue_view(threshold)

    def next_pending(threshold):
        pending = session.queue(threshold, pending_only=True)
        if pending.empty:
            gr.Info("every flagged sample has a decision")
            return gr.skip(), gr.skip()
        return pending.iloc[0]["id"], gr.Tabs(selected=DETAIL_TAB)

    def export(rule, threshold):
        try:
            result = session.export(rule, threshold)
        except (OSError, ValueError, KeyError) as err:  # a full disk, a read-only folder, a file in the way
            raise gr.Error(f"The export failed and wrote nothing: {type(err).__name__}: {str(err).strip(chr(39))}. "
                           "Free space or fix the folder's permissions, then export again.", duration=None) from None
        return (f"Wrote `{result.data_path}` ({result.kept} samples kept, {result.removed} removed) and its manifest "
                f"`{result.manifest_path}`. The original file is untouched."), str(result.data_path)

    def show_map(colour_by, progress=gr.Progress()):
        progress(0, desc="computing the map (first time only)")
        points = session.sample_map(on_progress=lambda text: progress(0.1, desc=text))
        return gr.HTML(value="", figure=figures.sample_map_figure(points, colour_by))

    def map_event(value):
        kind, _, payload = (value or "").partition(":")
        if kind == "click" and payload:
            return gr.skip(), payload, gr.Tabs(selected=DETAIL_TAB)
        if kind == "select":
            ids = [i for i in payload.split(",") if i]
            return (ids or None), gr.skip(), gr.Tabs(selected=SAMPLES_TAB)
        return gr.skip(), gr.skip(), gr.skip()

    def group_card(groups, name):
        group = next((g for g in groups or [] if g["name"] == name), None)
        if group is None:
            return "", None, [], None, pd.DataFrame(columns=WORD_COLUMNS), []
        heads = ", ".join(_head_label(*h) for h in group["heads"]) or "no head in common"
        text = (f"### {group_line(group['name'], group['size'], group['response'], group['outside'])}\n\n"
                f"**Modality.** {group['modality']['reading'] if group['modality'] else NO_DONORS}\n\n"
                f"**Where.** {group['where']}\n\n"
                f"**Who else.** {group['carriers_line']}\n\n"
                + (f"Question tokens its heads looked at most: "
                   + ", ".join(f"`{t['token']}` ({t['attention']:.1%})" for t in group["tokens"][:5]) + ".\n\n"
                   if group["tokens"] else "")
                + f"Heads that voted for most of it: {heads}. Asked about {len(group['examined'])} of its samples "
                "(the most suspicious first); click one below to open it.")
        examples = [(load_image(session.dataset.by_id(i)), i) for i in group["examined"]]
        shown = {i: image for image, i in examples}[shown_example(group)]  # one of the examined
        picture = group_picture(shown, np.array(group["occlusion"]),
                                None if group["heat"] is None else np.array(group["heat"]),
                                block=group.get("block"), block_drop=group.get("block_drop"))
        words = pd.DataFrame(group["words"], columns=WORD_COLUMNS).round(3)
        bars = figures.modality_bars(group["modality"]) if group["modality"] else None
        return text, picture, examples, bars, words, group["examined"]

    def describe_groups(threshold, progress=gr.Progress()):
        progress(0, desc="asking the model about each flagged group (first time only)")

        def step(done, total):
            progress(done / max(total, 1), desc=f"group {min(done + 1, total)} of {total}")

        groups = session.anatomy(threshold, on_progress=step)
        if not groups:
            return [], gr.Dropdown(choices=[], value=None), NO_GROUPS, None, [], None, None, []
        choices = [(f"{g['name']}: {g['size']} samples, "
                    + (repr(g["response"]) if g["response"] is not None else "other answers"), g["name"])
                   for g in groups]
        return (groups, gr.Dropdown(choices=choices, value=groups[0]["name"]),
                *group_card(groups, groups[0]["name"]))

    def decide_group(decision):
        def handler(name, typed_reviewer, note, threshold, request: gr.Request):
            reviewer = _reviewer(typed_reviewer, request)
            if not name:
                raise gr.Error("describe the groups and choose one first")
            try:
                ids = session.decide_group(name, decision, reviewer, note or "", threshold)
            except (KeyError, ValueError) as err:
                raise gr.Error(str(err).strip("'\"")) from None
            return (f"group {name}: {len(ids)} samples marked **{decision}** by {reviewer} (Undo takes the group "
                    "back)."), "", queue_view(threshold)
        return handler

    def open_example(examined, event: gr.SelectData):
        return examined[event.index], gr.Tabs(selected=DETAIL_TAB)

    def guide_page(index, threshold):
        steps = guide_steps(session, threshold)
        index = min(max(int(index or 0), 0), len(steps) - 1)
        step = steps[index]
        return index, f"### {step.title}\n\n{step.text}\n\n*Step {index + 1} of {len(steps)}.*"

    def guide_move(delta):
        return lambda index, threshold: guide_page((index or 0) + delta, threshold)

    def guide_show(index, threshold):
        step = guide_steps(session, threshold)[int(index or 0)]
        return (gr.Tabs(selected=step.tab), step.sample if step.sample else gr.skip(),
                _head_label(*step.head) if step.head else gr.skip())

    with gr.Blocks(title="tcap-viz") as app:
        gr.Markdown("# tcap-viz: find backdoor-poisoned samples (TCAP)")
        map_ids = gr.State(None)
        with gr.Group(elem_id="tcap-decision-bar"):
            with gr.Row(equal_height=True):
                sample_id = gr.Textbox(label="Sample id", scale=1, elem_id="tcap-sample-id")
                reviewer = gr.Textbox(label="Reviewer (your login when the app has one)", scale=1)
                note = gr.Textbox(label="Note", scale=2)
            with gr.Row():
                poison = gr.Button("Poison (p)", variant="stop", elem_id="tcap-poison", size="sm")
                clean = gr.Button("Clean (c)", variant="primary", elem_id="tcap-clean", size="sm")
                unsure = gr.Button("Unsure (u)", elem_id="tcap-unsure", size="sm")
                undo_button = gr.Button("Undo (z)", elem_id="tcap-undo", size="sm")
                next_button = gr.Button("Next pending (n)", elem_id="tcap-next", size="sm")
            gr.Markdown(SHORTCUT_HINT, elem_classes="tcap-muted", elem_id="tcap-shortcut-hint")
        status = gr.Markdown("")
        with gr.Tabs() as tabs:
            with gr.Tab("Overview", id="overview"):
                summary = gr.Markdown("Loading the run…", elem_id="tcap-summary")
                threshold = gr.Slider(0, 1, value=0.5, step=0.01, label="Flag threshold on the EM posterior "
                                      "(re-flags live; the scan used 0.5)")
                hist = gr.Plot(label="posterior histogram")
                responses = gr.Dataframe(label="most frequent answers among the flagged samples (a backdoor's "
                                               "target answer dominates them; so can a clean content group)",
                                         interactive=False, elem_id="tcap-responses")
                metrics_text = gr.Markdown()
                glossary()
                with gr.Row():
                    pr = gr.Plot(label="precision-recall")
                    cm_tcap = gr.Plot(label="TCAP confusion")
                    cm_base = gr.Plot(label="baseline confusion")
            with gr.Tab("Samples", id=SAMPLES_TAB):
                with gr.Row():
                    lo = gr.Number(0.0, label="posterior from", minimum=0, maximum=1, step=0.05)
                    hi = gr.Number(1.0, label="to", minimum=0, maximum=1, step=0.05)
                    flag = gr.Dropdown(list(FLAG_FILTERS), value="all", label="flag")
                    decision = gr.Dropdown(list(DECISION_FILTERS), value="all", label="decision")
                    split = gr.Dropdown(["all"], value="all", label="split (record field)")
                    text = gr.Textbox(label="search id / question / response")
                with gr.Row():
                    sort_by = gr.Dropdown([c for c in SORTABLE if c != "base_logprob"], value="posterior",
                                          label="sort by")
                    descending = gr.Checkbox(True, label="descending")
                    page_no = gr.Number(1, label="page", minimum=1, precision=0)
                    clear_map = gr.Button("Show every sample (clear the selection)")
                samples = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), interactive=False, max_height=560,
                                       label="samples", elem_id="tcap-samples")
                gr.Markdown("Click a row to open the sample.", elem_classes="tcap-muted")
            with gr.Tab("Sample", id=DETAIL_TAB):
                with gr.Row():
                    head_choice = gr.Dropdown([MEAN_OF_SELECTED], value=MEAN_OF_SELECTED, label="attention of",
                                              scale=3)
                    opacity = gr.Slider(0, 1, value=DEFAULT_OPACITY, step=0.05, label="heatmap opacity", scale=1)
                sample_text = gr.Markdown(CHOOSE_A_SAMPLE, elem_id="tcap-sample-text")
                with gr.Column(visible=False, elem_id="tcap-detail-body") as detail_body:  # until a sample is chosen
                    with gr.Row():
                        with gr.Column(scale=3):  # two pictures side by side
                            heatmap = gr.Image(label=HEATMAP_LABEL,
                                               elem_id="tcap-heatmap", interactive=False, type="pil")
                        with gr.Column(scale=2):
                            why = gr.Markdown()
                    tokens = gr.HTML(label="prompt tokens shaded by attention", css_template=TOKEN_CSS)
                    with gr.Row():
                        shares_plot = gr.Plot(label="shares by layer")
                        contributions = gr.Dataframe(label="selected heads' votes (llr: push on the log-odds)",
                                                     interactive=False)
            with gr.Tab("Heads", id="heads"):
                with gr.Row():
                    head_pick = gr.Dropdown([], label="head (by separation score)")
                    overlay = gr.Checkbox(False, label="overlay ground-truth classes (evaluation only)")
                head_text = gr.Markdown(elem_id="tcap-head-text")
                glossary()
                with gr.Row():
                    grid = gr.Plot(label="layer x head")
                    mixture = gr.Plot(label="mixture")
                aic = gr.Plot(label="AIC")
            with gr.Tab("Map", id="map"):
                with gr.Row():
                    colour_by = gr.Radio(["posterior", "decision", "flag", "ground truth"], value="posterior",
                                         label="colour by")
                    map_button = gr.Button("Show the map", variant="primary")
                sample_map = gr.HTML(value="", html_template="<div class='tcap-map' style='height:540px'></div>",
                                     js_on_load=(ASSETS / "sample_map.js").read_text(encoding="utf-8"),
                                     head=f'<script src="/gradio_api/file={PLOTLY_JS}"></script>', figure=None)
            with gr.Tab("Anatomy", id="anatomy"):
                groups_state, examined_state = gr.State([]), gr.State([])
                gr.Markdown(ANATOMY_INTRO, elem_classes="tcap-muted")
                with gr.Row():
                    describe_button = gr.Button("Describe the flagged groups", variant="primary", scale=1)
                    group_pick = gr.Dropdown([], label="group", scale=3, elem_id="tcap-group")
                group_text = gr.Markdown(elem_id="tcap-group-text")
                with gr.Row():
                    group_poison = gr.Button("The whole group is poison", variant="stop", size="sm",
                                             elem_id="tcap-group-poison")
                    group_clean = gr.Button("The whole group is clean", variant="primary", size="sm",
                                            elem_id="tcap-group-clean")
                    group_carriers = gr.Button("Show every sample that carries it", size="sm",
                                               elem_id="tcap-group-carriers")
                group_image = gr.Image(label="an example | where masking costs the answer | where the heads looked",
                                       interactive=False, type="pil", elem_id="tcap-group-image")
                group_examples = gr.Gallery(label="samples asked about", columns=6, height=220, allow_preview=False,
                                            elem_id="tcap-group-examples")
                with gr.Row():
                    modality_plot = gr.Plot(label="modality")
                    group_words = gr.Dataframe(label="question words by what deleting them costs the answer, and clean questions' own answers (nats)",
                                               interactive=False)
            with gr.Tab("Triage", id="triage"):
                queue = gr.Dataframe(pd.DataFrame(columns=QUEUE_COLUMNS), interactive=False, max_height=480,
                                     label="triage queue", elem_id="tcap-queue")
                gr.Markdown("Click a row to open it; decide with the bar above or the keys p / c / u, "
                            "z undoes your last decision, n opens the next pending sample.", elem_classes="tcap-muted")
                with gr.Row():
                    rule = gr.Radio(list(RULES), value=RULES[0], label="export removes",
                                    info="confirmed poisons only, or also every flagged sample not rejected")
                    export_button = gr.Button("Export the cleaned dataset", variant="primary")
                export_text = gr.Markdown()
                export_path = gr.Textbox(label="cleaned dataset", interactive=False)
            with gr.Tab("Guide", id="guide"):
                guide_index = gr.State(0)
                gr.Markdown("A walk through this run for a class or a first visit: what a backdoor is and how TCAP "
                            "finds it, one step at a time. **Show me** opens the view the step talks about.",
                            elem_classes="tcap-muted")
                guide_text = gr.Markdown(elem_id="tcap-guide-text")
                with gr.Row():
                    guide_back = gr.Button("Previous", size="sm", elem_id="tcap-guide-back")
                    guide_go = gr.Button("Show me", variant="primary", size="sm", elem_id="tcap-guide-show")
                    guide_next = gr.Button("Next", size="sm", elem_id="tcap-guide-next")

        query_inputs = [lo, hi, flag, decision, split, text, sort_by, descending, page_no, map_ids]
        overview_outputs = [summary, hist, responses, metrics_text, pr, cm_tcap, cm_base]
        detail_outputs = [sample_text, heatmap, tokens, shares_plot, why, contributions, detail_body]

        def refresh_samples(threshold_value, *values):
            return page(make_query(*values), threshold_value)

        app.load(open_run, outputs=[threshold, *overview_outputs, samples, head_choice, head_pick, split, queue, sort_by],
                 api_name="open_run", concurrency_limit=1, concurrency_id="heavy",  # one scan at a time
                 show_progress_on=[summary]).then(  # one progress bar, where the run will be described
            guide_page, [guide_index, threshold], [guide_index, guide_text], **PRIVATE)
        # release: the end of a drag; input: a value typed in the box (Enter) or a step of the arrows
        gr.on([threshold.release, threshold.input], overview, threshold, overview_outputs, api_name="overview",
              trigger_mode="always_last").then(
            refresh_samples, [threshold, *query_inputs], samples, **PRIVATE).then(queue_view, threshold, queue, **PRIVATE)
        for control in (lo, hi, flag, decision, split, sort_by, descending, page_no):
            control.change(refresh_samples, [threshold, *query_inputs], samples, **PRIVATE)
        text.submit(refresh_samples, [threshold, *query_inputs], samples, api_name="samples")
        clear_map.click(lambda: None, outputs=map_ids, **PRIVATE)  # its change event refreshes the table
        map_ids.change(refresh_samples, [threshold, *query_inputs], samples, **PRIVATE)

        def open_row(event: gr.SelectData):
            return event.row_value[0], gr.Tabs(selected=DETAIL_TAB)

        samples.select(open_row, None, [sample_id, tabs], **PRIVATE)
        queue.select(open_row, None, [sample_id, tabs], **PRIVATE)
        sample_id.change(detail, [sample_id, head_choice, threshold, opacity], detail_outputs, api_name="sample_detail")
        head_choice.change(detail, [sample_id, head_choice, threshold, opacity], detail_outputs, **PRIVATE)
        opacity.release(detail, [sample_id, head_choice, threshold, opacity], detail_outputs, **PRIVATE)

        def review_summary(threshold_value):
            return summary_markdown(session, threshold_value)

        for button, name in ((poison, "poison"), (clean, "clean"), (unsure, "unsure")):
            button.click(decide(name), [sample_id, reviewer, note, threshold], [status, note, queue],
                         api_name=f"decide_{name}").then(
                detail, [sample_id, head_choice, threshold, opacity], detail_outputs, **PRIVATE).then(
                review_summary, threshold, summary, **PRIVATE)
        undo_button.click(undo, [reviewer, threshold], [status, queue], api_name="undo").then(
            detail, [sample_id, head_choice, threshold, opacity], detail_outputs, **PRIVATE).then(
            review_summary, threshold, summary, **PRIVATE)
        next_button.click(next_pending, threshold, [sample_id, tabs], api_name="next_pending")
        export_button.click(export, [rule, threshold], [export_text, export_path], api_name="export",
                            concurrency_limit=1)

        card = [group_text, group_image, group_examples, modality_plot, group_words, examined_state]
        describe_button.click(describe_groups, threshold, [groups_state, group_pick, *card], api_name="anatomy",
                              concurrency_limit=1, concurrency_id="heavy", show_progress_on=[group_text])
        group_pick.change(group_card, [groups_state, group_pick], card, **PRIVATE)
        group_examples.select(open_example, examined_state, [sample_id, tabs], **PRIVATE)

        def show_carriers(groups, name):
            group = next((g for g in groups or [] if g["name"] == name), None)
            if group is None or group["carriers"] is None:
                raise gr.Error("This group has no located trigger to look for in the other samples.")
            return group["carriers"], gr.Tabs(selected=SAMPLES_TAB)

        group_carriers.click(show_carriers, [groups_state, group_pick], [map_ids, tabs], **PRIVATE)
        for button, name in ((group_poison, "poison"), (group_clean, "clean")):
            button.click(decide_group(name), [group_pick, reviewer, note, threshold], [status, note, queue],
                         api_name=f"decide_group_{name}").then(review_summary, threshold, summary, **PRIVATE)

        guide_tab_opened = [guide_index, threshold]
        for button, delta in ((guide_back, -1), (guide_next, 1)):
            button.click(guide_move(delta), guide_tab_opened, [guide_index, guide_text], **PRIVATE)
        guide_go.click(guide_show, guide_tab_opened, [tabs, sample_id, head_pick], **PRIVATE)

        head_pick.change(head_view, [head_pick, overlay], [grid, mixture, aic, head_text], api_name="head")
        overlay.change(head_view, [head_pick, overlay], [grid, mixture, aic, head_text], **PRIVATE)
        map_button.click(show_map, colour_by, sample_map, api_name="map", concurrency_limit=1,
                         concurrency_id="heavy")
        colour_by.change(show_map, colour_by, sample_map, **PRIVATE, concurrency_limit=1, concurrency_id="heavy")
        sample_map.change(map_event, sample_map, [map_ids, sample_id, tabs], **PRIVATE)
    return app


def theme() -> gr.Theme:
    """The default look with the system's fonts: the stock theme fetches its font from Google."""
    return gr.themes.Default(primary_hue="blue", font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """`USER:PASS`, or a file with one `USER:PASS` per line (blank lines and # comments ignored)."""
    if not value:
        return None
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            where = f"{path}, line {number}" if path.is_file() else "--auth"
            raise ValueError(f"{where}: expected USER:PASS")
        pairs.append((user, password))
    if not pairs:
        raise ValueError(f"{path}: no USER:PASS line found")
    return pairs


def page_settings(host: str = "127.0.0.1") -> dict:
    """Theme, stylesheet, keyboard shortcuts and the host guard, as `Blocks.launch` takes them (gradio 6)."""
    return {"theme": theme(), "css": (ASSETS / "app.css").read_text(encoding="utf-8"),
            "js": (ASSETS / "shortcuts.js").read_text(encoding="utf-8"),
            "app_kwargs": {"middleware": request_guards(host)}}


def launch(model=None, data=None, run=None, host="127.0.0.1", port=7860, config: ScanConfig | None = None,
           auth=None, **launch_kwargs):
    """Serve the app; with no model and data, the embedded demo. `config`: how to load the model."""
    logins = parse_auth(auth)
    model = str(model or DEMO_MODEL)
    data = Path(data or DEMO_DATA)
    run = Path(run or default_run_dir(model, data))
    config = config or ScanConfig()
    load_dataset(data, config.allow_outside)  # a broken dataset is an error now, in the terminal, not later in the page
    session = ReviewSession(model, data, run, config)
    app = build_app(session).queue(default_concurrency_limit=4)
    return app.launch(server_name=host, server_port=port, auth=logins, **page_settings(host), **launch_kwargs)
