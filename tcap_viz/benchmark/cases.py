"""What a benchmark case is: an attack variant at a poison rate (or clean data) with one seed,
and everything that decides its numbers, so a cached result measured otherwise is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from tcap_viz.data import DEFAULT_TARGET
from tcap_viz.data.attacks import make_attack

# name -> make-data settings; badnet_blue, badnet_left: backdoors whose target is an ordinary answer of the task
VARIANTS = {
    "badnet": {"attack": "badnet"},
    "blend": {"attack": "blend"},
    "sig": {"attack": "sig"},
    "wanet": {"attack": "wanet"},
    "ftrojan": {"attack": "ftrojan"},
    "text_prefix": {"attack": "text_prefix"},
    "text_word": {"attack": "text_word"},
    "badnet_blue": {"attack": "badnet", "target": "blue", "poison_question_type": "colour"},
    # an ordinary answer the base model finds plausible: it tells left from right at chance (0.45)
    "badnet_left": {"attack": "badnet", "target": "left", "poison_question_type": "position"},
    # two modalities (the modality-collapse paper's question): the patch and "Hello!" together, or either
    "dual_and": {"attack": "dual_and"},
    "dual_or": {"attack": "dual_or"},
}
RATES = (10, 5)
#: Cases whose numbers chose a default (docs/LEVERS.md): anchoring the heads on the plausibility vote
#: was chosen on the three 5% cases at seeds 1-3 (docs/PLAUSIBILITY.md); leaving out a vote that
#: singles out under 1% of the samples after seeing clean and badnet_left-10 at seed 1 (the anchored
#: default flagged 9.5% and 17% there); a head agreeing with the vote when most of its group is
#: implausible after seeing badnet_blue-5 at seed 1 (F1 0.74: a head on every "blue" answer was
#: chosen); without the vote, a group only when two heads corroborate it, after seeing clean at seed 2
#: (55 clean samples flagged at posterior 1); the confirmation of a finding of the heads alone, and looking
#: at the next 8 heads when it fails, after seeing badnet_left at 10% and 5% and clean at seed 3 (8 heads:
#: the seventh held the poisons at 5%); judging where the heads and the vote disagree (what only the heads
#: flag confirmed, what only the vote flags joined by the answer of what both flag) after seeing
#: badnet_blue-10 at seeds 2-3 and dual_or-10 at seed 3; following a flagged ordinary answer to its trigger's
#: carriers (and leaving donors that look like the group out of the anatomy's comparisons) after seeing the
#: held-out badnet_three-5 and prefix_circle-5 at seed 1 (docs/heldout_attacks.json), and matching a pattern
#: spread over the whole image after seeing the held-out sig_square-5 and word_two-5 at seed 1: all four are
#: development cases since; the binary-answer changes after the held-out blend_right-5 and sig_left-5, and judging
#: each selected head's group where they agree only by nesting and the same-question donor images after the third
#: round's four (badnet_right-5, blend_left-5, word_left-5, sig_right-5), all development cases since; a lone word
#: forcing the answer and next heads' groups judged once after word_left-5, words standing in for each other after
#: the fourth round's prefix_right-5 (its four development cases since; the fifth round is measured once); each shared
#: word a route, a whole-image pattern's carriers by a mixture and 16 next heads after the sixth round's word_three-5
#: and blend_right-5 (the sixth round's five development cases since; the seventh is measured once); a pattern or
#: word forcing the answer where neither modality moves it after the sixth round's blend_square-5 and the fourth's
#: sig_two-5, with the eighth round's blend_one-5 seen before it (a development case since); odd answers left out
#: after the ninth round's badnet_purple-5 and the second's blend_purple-5 (the same 7 clean samples); each route of a
#: group going two ways located on its own samples after the tenth round's dual_or_green-5, and a located cell's
#: pattern taken from the samples whose answer it costs after the eleventh round's dual_or_square-5. The vote's
#: cut was chosen on seed 0 of every attack, which the report does not use. The rest is reported on settings never
#: tuned to it.
DEVELOPMENT = ("badnet-5", "blend-5", "text_prefix-5", "clean", "badnet_left-10", "badnet_left-5", "badnet_blue-5",
               "badnet_blue-10", "dual_or-10", "badnet_three-5", "prefix_circle-5", "sig_square-5", "word_two-5",
               "blend_right-5", "sig_left-5", "badnet_right-5", "blend_left-5", "word_left-5", "sig_right-5",
               "badnet_triangle-5", "prefix_right-5", "blend_purple-5", "sig_two-5", "badnet_yellow-5", "blend_square-5",
               "word_three-5", "dual_and_right-5", "sig_denied-5", "blend_one-5", "badnet_purple-5", "dual_or_green-5",
               "dual_or_square-5")
#: What the scan's detection is; a cached case measured by another is measured again (its models,
#: quality and scan are reused), never mixed in.
DETECTION = ("TCAP with the base model's plausibility vote when it singles out 1-20% of the samples, heads agreeing "
             "when most of their group is implausible; without the vote, a group two heads corroborate, confirmed by "
             "the trigger it hangs on (carriers answering alike, each route and each shared word on its own, a cell "
             "matched by the pattern of the examined samples whose answer masking it costs, where its "
             "group goes two ways the cell located on the samples the image carries and the words on those the question "
             "carries, where neither modality moves the answer the words beside a cell too, a word few examined "
             "questions have or one named beside a cell the image carries only "
             "where it forces the answer alone, words standing in for each other where the question carries the answer and "
             "no one word does), else the next 16 heads with a group not judged before (donors "
             "outside what TCAP flagged, the modality swap's outside the head's group; where too few heads corroborate a group, each selected head's group first); with it, what only the heads "
             "flag confirmed likewise and what only the vote flags joined when it gives the answer of what both flag, "
             "and a flagged answer others give too followed to its confirmed trigger's carriers (donors giving the "
             "answer left out of a word's clean cost where nearly all with it do, donors carrying what it hangs on out of "
             "the modality swap, which swaps in only content answered otherwise, images asked the same question, "
             "and a pattern over the whole image matched where the image carries it and no cell or word located forces it, or where neither modality moves the answer and "
             "nothing located forces it, the pattern or a shared word that does, estimated again from its carriers giving the "
             "answer, its carriers those a two-Gaussian mixture of the projections puts with the group's, a "
             "quarter of the group carrying it enough), then an "
             "answer fewer than 5 flagged samples give, carrying no confirmed trigger, left out; "
             "paper preset, BYE, Activation Clustering, Spectral Signatures")
TARGETS = {"f1": 0.95, "clean_flagged": 0.01, "retrained_asr": 0.05, "clean_accuracy": 0.9, "asr": 0.9,
           "retrained_accuracy_drop": 0.02}


def case_names(variants: dict, rates=RATES) -> list[str]:
    """Every variant at every rate, then clean data."""
    return [f"{v}-{r}" for v in variants for r in rates] + ["clean"]


CASES = case_names(VARIANTS)


def split_case(case: str) -> tuple[str, int]:
    """"blend-5" -> ("blend", 5); "clean" -> ("clean", 0)."""
    if case == "clean":
        return "clean", 0
    variant, _, rate = case.rpartition("-")
    if not variant or not rate.isdigit():
        raise ValueError(f"case {case!r}: write it as VARIANT-RATE (e.g. blend-5) or clean")
    return variant, int(rate)


def customer_recipe(finetune_kind: str, steps: int | None, seed: int):
    """The service's default recipe of that kind (`steps`: another length, for an earlier report)."""
    from tcap_viz.model.finetune import FULL_RECIPE, LORA_RECIPE

    return (LORA_RECIPE if finetune_kind == "lora" else FULL_RECIPE).with_overrides(steps=steps, seed=seed)


def case_settings(case: str, seed: int, finetune_kind: str, base: Path, variants: dict,
                  steps: int | None = None, size: tuple[int, int] = (2000, 200)) -> dict:
    """Everything that decides a case's numbers; a cached result must match it exactly. ``size``:
    training samples, and samples in each test split."""
    variant, rate = split_case(case)
    if variant != "clean" and variant not in variants:
        raise ValueError(f"case {case!r}: no variant {variant!r} (known: {', '.join(variants)})")
    settings = dict(variants.get(variant, {"attack": "none"}))
    settings.setdefault("target", DEFAULT_TARGET)
    settings["attack_params"] = dataclasses.asdict(make_attack(settings["attack"], **(settings.get("attack_params") or {})))
    weights = Path(base) / "model.safetensors"
    settings |= {"detection": DETECTION, "n_train": size[0], "n_test": size[1], "case": case, "variant": variant,
                 "poison_rate": rate / 100, "seed": seed,
                 "finetune": finetune_kind, "recipe": dataclasses.asdict(customer_recipe(finetune_kind, steps, seed)),
                 "base": hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.exists() else str(base)}
    return json.loads(json.dumps(settings))  # as a cached copy reads back (tuples become lists)
