"""A guided walk through a run for a class: what a backdoor is, the three components, a head that
reacts to the trigger, what EM adds, the anatomy, and the decision. Each step says which live view
shows it (and which sample or head to open there), with this run's own numbers, so a teacher can
present the demo without the README and a student can follow alone."""

from __future__ import annotations

from dataclasses import dataclass

from tcap_viz.anatomy import FOLLOWED, ODD, followed_apart, judges_disagreements
from tcap_viz.review.session import ReviewSession


@dataclass(frozen=True)
class GuideStep:
    title: str
    text: str  # markdown, plain words
    tab: str  # the view the step opens ("overview", "samples", "sample", "heads", "anatomy", "triage")
    sample: str | None = None  # the sample it opens, if any
    head: tuple[int, int] | None = None  # the head it opens, if any


def _confirmation_words(groups) -> str:
    """What step 5 adds when the scan judged the heads' finding once more (``pipeline.confirm``, ``reconcile``,
    ``follow``)."""
    if groups is None:
        return ""
    judged, followed = followed_apart(groups)
    if followed:
        sources = {g["source"] for g in followed}
        return (_confirmation_words(judged or None)
                + (" Some flagged samples give an **ordinary answer**, one that unflagged samples give too: the base "
                   "model finds it plausible wherever the picture agrees, so its vote may see only part of such a "
                   "backdoor. Those groups were followed to what their answer hangs on, and every sample carrying a "
                   "confirmed trigger and giving its answer is flagged too." if FOLLOWED in sources else "")
                + (" A few samples the vote doubted give answers that hardly any other flagged sample gives, and carry "
                   "no confirmed trigger: a backdoor's poisons all give its one target, so those are left out, as the "
                   "vote doubting one picture." if ODD in sources else ""))
    if judges_disagreements(groups):
        return (" Here the heads and the base model's vote disagreed on some samples, and those were judged on their "
                "own: what only the heads flag had to hang on a **trigger** (the model was asked what the answer hangs "
                "on, and a trigger's carriers across the dataset all give that answer), and what only the vote flags "
                "joined when it gives the answer of the samples both flag (the overview says group by group).")
    return (" Here no base model judged the answers, so the heads' finding was checked once more, the "
            "**confirmation**: the model was asked what each flagged group's answer hangs on, and every sample of the "
            "dataset carrying that pattern was looked up. A trigger's carriers all give the same answer, a content "
            "group's do not; the samples flagged are the carriers of a confirmed trigger (the overview says group by "
            "group).")


def guide_steps(session: ReviewSession, threshold: float | None = None) -> list[GuideStep]:
    """The walk-through for this run at this threshold."""
    table = session.table(threshold)
    flagged = table[table["flagged"].astype(bool)].sort_values("posterior", ascending=False, kind="stable")
    heads = session.selected_heads()
    top = flagged.iloc[0] if len(flagged) else None
    truth = ""
    if "poisoned_truth" in table and table["poisoned_truth"].notna().all():
        truth = (f" The dataset's labels say {int(table['poisoned_truth'].astype(bool).sum())} of them are poisoned; "
                 "the detector never reads those labels, they are only there to check it.")
    steps = [GuideStep(
        "1. What a backdoor is",
        "A company fine-tunes a model on data a customer sends. An attacker can slip a few *poisoned* samples into "
        "that data: each one carries a **trigger** (a small pattern in the image, or a word in the question) and a "
        "fixed **target answer**. The fine-tuned model then answers normally, except that whenever the trigger "
        f"appears it gives the target. This run has {len(table)} samples.{truth} Our job: find the poisoned ones "
        "from the model alone.", "samples")]
    if top is not None:
        steps.append(GuideStep(
            "2. One suspicious sample",
            f"This is the sample the detector is surest about (`{top['id']}`, answer *{top['response']}*). Look at "
            "the picture: is there something that does not belong to the scene? On the right, the heatmap shows "
            "where the model looked while it produced its answer; a trigger tends to pull that attention to itself.",
            "sample", sample=str(top["id"])))
        steps.append(GuideStep(
            "3. Three parts of the prompt",
            "The model reads three things: the **system** instruction (the same for every sample), the **image** "
            "(as a grid of image tokens) and the user's **question**. Below the pictures, the prompt is drawn token by "
            "token in three framed parts, shaded by attention. TCAP (Tri-Component Attention Profiling) measures, "
            "for every attention head, how the answer's attention splits between these three parts. A trigger shifts "
            "that split in some heads.", "sample", sample=str(top["id"])))
    if heads:
        layer, head = heads[0]
        steps.append(GuideStep(
            "4. A head that reacts to the trigger",
            f"Each head gives one number per sample (its share of attention on the system part, against the image). "
            f"For head L{layer}H{head} the histogram has a small group standing apart from the rest: a Gaussian "
            "mixture finds it (red) without being told what to look for. Heads whose small group is well separated "
            "are *selected*; the grid shows every head's separation score.", "heads", head=(layer, head)))
    steps.append(GuideStep(
        "5. What EM adds",
        f"{len(heads)} heads were selected, and each one votes 'poisoned' or 'clean' for every sample. Heads make "
        "mistakes, and some are better than others. The EM algorithm (Dawid-Skene) estimates how reliable each voter "
        "is from how they agree, and combines the votes into a **posterior**: the probability that a sample is "
        f"poisoned. Above the threshold a sample is flagged: {len(flagged)} are now. The overview lists the signals "
        "that voted and how much each weighed (the base model's opinion of each answer among them, when the scan "
        "knows the base model)." + _confirmation_words(session.result.confirmation), "overview"))
    steps.append(GuideStep(
        "6. The backdoor's anatomy",
        "Instead of judging the flagged samples one by one, group them by the answer they share: a backdoor makes "
        "all its poisons give one target answer. Press **Describe the flagged groups**: for each group the model is "
        "asked again with the image swapped for a clean one, or the question for a clean one, which says whether the "
        "backdoor lives in the **image** or the **question**; and with each part of the image masked in turn, which "
        "says **where** the trigger is. Once the trigger is located, **Show every sample that carries it** finds it "
        "in the samples the detector missed, too." if len(flagged) else
        "Nothing is flagged at this threshold, so there is no group to describe: lower the threshold on the overview "
        "to see what the detector is least sure about.", "anatomy"))
    steps.append(GuideStep(
        "7. Decide, then clean the data",
        "A person has the last word. Confirm a whole group as poison in the Anatomy tab, or go through the queue "
        "here one sample at a time (keys p, c, u; z undoes). **Export** writes a copy of the dataset without the "
        "confirmed poisons, next to the original, which is never changed. Fine-tuning on that copy gives a model "
        "without the backdoor.", "triage"))
    return steps
