"""The benchmark as a Python object: run its cases, read their cached results, render the report."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import shlex
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from tcap_viz.atomic import atomic_write_text
from tcap_viz.demo import BASE_MODEL

from .cases import (
    DETECTION,
    DEVELOPMENT,
    RATES,
    TARGETS,
    VARIANTS,
    case_names,
    case_settings,
    customer_recipe,
)
from .run_case import ABLATION, poisons_anatomy, poisons_modality, run_case

#: metrics key -> column name; "paper" is read from the ablation
DETECTORS = {"paper": "paper TCAP", "tcap": "default", "baseline": "BYE", "activation_clustering": "Act. Clustering",
             "spectral_signatures": "Spectral Sig."}


class Benchmark:
    """Cases (VARIANT-RATE or "clean") x seeds, each a customer fine-tune of ``base``, scanned.

    ``variants``: name -> make-data settings (``attack``, optional ``attack_params``, ``target``,
    ``poison_question_type``); the testbed's own by default. ``n_train`` training samples and
    ``n_test`` in each test split. Every step is cached under ``work``; each case's numbers as JSON under
    ``results`` (default ``work/results``): a few kilobytes a case, worth committing beside a report, so
    that it renders again from a fresh clone, where the models and scans (hundreds of megabytes) are gone.
    """

    def __init__(self, work: str | Path = "runs/report", cases: list[str] | None = None, seeds=(1, 2, 3),
                 variants: dict | None = None, rates=RATES, finetune: str = "lora", steps: int | None = None,
                 base: str | Path = BASE_MODEL, n_train: int = 2000, n_test: int = 200,
                 results: str | Path | None = None):
        self.work, self.base = Path(work), Path(base)
        self.results_dir = Path(results) if results is not None else self.work / "results"
        self.variants = dict(VARIANTS if variants is None else variants)
        self.cases = list(cases or case_names(self.variants, rates))
        self.seeds = list(seeds)
        if finetune not in ("lora", "full"):
            raise ValueError(f"finetune must be 'lora' or 'full', got {finetune!r}")
        self.finetune, self.steps, self.size = finetune, steps, (n_train, n_test)
        for case in self.cases:  # a typo fails now, not after an hour of fine-tuning
            self.settings(case, 0)

    def settings(self, case: str, seed: int) -> dict:
        return case_settings(case, seed, self.finetune, self.base, self.variants, self.steps, self.size)

    @property
    def recipe_steps(self) -> int:
        return customer_recipe(self.finetune, self.steps, 0).schedule.steps

    def run(self, device: str | None = None, workers: int = 1, retrain: bool = True, show_progress: bool = True,
            command: str = "Benchmark.run") -> list[dict]:
        """Measure every case and seed not cached yet (``workers`` at once, for a GPU machine);
        ``command``, what is running, is kept with each result and quoted by the report."""
        jobs = [(case, seed) for seed in self.seeds for case in self.cases]
        common = {"work": self.work, "results": self.results_dir, "base": self.base, "variants": self.variants,
                  "finetune_kind": self.finetune, "device": device, "steps": self.steps, "retrain": retrain,
                  "size": self.size, "command": command}
        bar = tqdm(total=len(jobs), desc="benchmark cases", unit="case", disable=not show_progress)
        if workers == 1:
            for case, seed in jobs:
                bar.set_postfix_str(f"{case} seed {seed}")
                run_case(case=case, seed=seed, **common)
                bar.update()
        else:
            threads = max(1, (os.cpu_count() or 2) // workers)
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(run_case, case=case, seed=seed, threads=threads, **common) for case, seed in jobs]
                for future in as_completed(futures):
                    future.result()
                    bar.update()
        bar.close()
        return self.results()

    def results(self) -> list[dict]:
        """The cached results of this benchmark's cases and seeds measured by today's detector."""
        return self._cached()[0]

    def stale(self) -> list[tuple[str, int]]:
        """The cases and seeds whose cached result an earlier detector measured: not mixed into the
        report, listed in it; a run without --render detects them anew from the cached scan."""
        return self._cached()[1]

    def _cached(self) -> tuple[list[dict], list[tuple[str, int]]]:
        found, stale = [], []
        for case in self.cases:
            for seed in self.seeds:
                path = self.results_dir / f"{case}-s{seed}-{self.finetune}-{self.recipe_steps}.json"
                if not path.exists():
                    continue
                result = json.loads(path.read_text())
                if result["settings"] == self.settings(case, seed):
                    found.append(result)
                elif {**result["settings"], "detection": DETECTION} == self.settings(case, seed):
                    stale.append((case, seed))
                else:
                    raise ValueError(f"{path} was measured with other settings than this benchmark's; delete it (and "
                                     "the case's models and runs) to measure it again")
        return found, stale

    def report(self) -> str:
        """The markdown report of what is measured so far."""
        found, stale = self._cached()
        return render(found, self.cases, stale)

    def write(self, path: str | Path) -> Path:
        """Write the report; refuses when nothing is measured by today's detector (an existing report is kept)."""
        found, stale = self._cached()
        if not found:
            raise ValueError(f"no results of today's detector under {self.results_dir} for these cases and seeds"
                             + (f" ({len(stale)} of an earlier one: run without --render to detect them anew)" if stale
                                else "") + f"; {path} is left as it is")
        atomic_write_text(Path(path), render(found, self.cases, stale))
        return Path(path)


def _stat(values: list[float | None]) -> str:
    """Mean ± standard deviation over seeds, in percent; undefined values (an AUROC without a score)
    are left out and counted."""
    given = [v for v in values if v is not None]
    defined = [v for v in given if not math.isnan(v)]
    if not defined:
        return "-"
    mean = 100 * statistics.fmean(defined)
    text = f"{mean:.1f}" if len(defined) == 1 else f"{mean:.1f} ± {100 * statistics.stdev(defined):.1f}"
    return text if len(defined) == len(given) else f"{text} ({len(defined)} of {len(given)})"


def _detector_metrics(result: dict, key: str) -> dict | None:
    return result["ablation"].get("paper") if key == "paper" else result["metrics"].get(key)


def _coherence_cell(scores: dict) -> str:
    if "dominant_share" not in scores:
        return "-"
    if not scores["n_flagged"]:
        return "0"
    return f"{scores['n_flagged']}: {scores['dominant_share']:.0%} ({scores['dominant_outside']} outside)"


def _commands(results: list[dict]) -> dict[str, int]:
    """The commands that measured the results, with how many cases each, in the order that reproduces
    them: those that made the retrainings first (a later run reads them); where the markdown went
    (``--out``) is left out: it changes no number. Commands that differ only in their ``--cases`` (cases
    measured one at a time) are quoted as one run over all of them."""
    made = [(k, r["retrain_command"]) for k, r in enumerate(results) if "retrain_command" in r]
    measured = [(k, r.get("command") or "a command not recorded") for k, r in enumerate(results)]
    cases: dict[str, set] = {}
    for k, command in made + measured:
        cases.setdefault(re.sub(r" --out \S+", "", command), set()).add(k)
    runs: dict[tuple, tuple[list[str], list[str], set]] = {}  # the words but --cases -> its commands, cases, results
    for command, ks in cases.items():
        words, listed = _without_cases(command)
        commands, union, members = runs.setdefault(words, ([], [], set()))
        commands.append(command)
        union += [c for c in listed if c not in union]
        members |= ks
    return {(commands[0] if len(commands) == 1 else shlex.join([*words, *(["--cases", *union] if union else [])])):
            len(ks) for words, (commands, union, ks) in runs.items()}


def _without_cases(command: str) -> tuple[tuple[str, ...], list[str]]:
    """A command's words without its ``--cases`` list, and that list."""
    try:
        words = shlex.split(command)
    except ValueError:  # not a command line: merged with nothing
        return (command,), []
    if "--cases" not in words:
        return tuple(words), []
    start = words.index("--cases") + 1
    end = next((i for i in range(start, len(words)) if words[i].startswith("--")), len(words))
    return (*words[:start - 1], *words[end:]), words[start:end]


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else math.nan


def _confirmation_cell(group: dict) -> str:
    """One judged group: its size and answer, what was located, its carriers and how many answer alike."""
    where = ", ".join(([f"cell {tuple(group['region'])}"] if group["region"] else [])
                      + ([f"cells {group['block'][2]}x{group['block'][2]} from {tuple(group['block'][:2])}"]
                         if group.get("block") else [])
                      + [repr(w) for w in group["trigger_words"]]
                      + ([" + ".join(map(repr, group["phrase"])) + " (each alone)"] if group.get("phrase") else [])
                      + (["a whole-image pattern"] if group.get("spread") and not group.get("block") else [])) or "nothing located"
    answer = "other answers" if group["response"] is None else repr(group["response"])
    source = "" if group.get("source", "TCAP") == "TCAP" else f"{group['source']}: "
    if group["carriers"] is None:
        return f"{source}{group['size']} {answer}: {where}"
    return (f"{source}{group['size']} {answer}: {where}, {group['carriers']} carriers, {group['consistency']:.0%} "
            "answering alike" + (" **confirmed**" if group["confirmed"] else ""))


def _disagreement_cell(group: dict) -> str:
    """One group of what only the heads or only the vote flagged, as the scan judged it."""
    answer = "other answers" if group["response"] is None else repr(group["response"])
    if group["source"] == "vote only":
        if not group.get("joined", group["answering"]):
            return f"{group['size']} {answer}: not joined"
        return f"{group['size']} {answer}: joined" + (f" ({group['agreed']} both flag it)" if "agreed" in group else "")
    if group["response"] is None and group["carriers"] is None and not group["region"] and not group["trigger_words"]:
        return f"{group['size']} {answer}: too few alike, not examined"
    return _confirmation_cell(group | {"source": "TCAP"})


def _judged_table(results: list[dict], cases: list[str], kind: str, title: str, intro: str,
                  columns: list[str], cells) -> list[str]:
    """A section with one row per run whose scan judged groups of the given ``kind`` ("disagreement", "heads alone"
    or ``FOLLOWED``), in the report's case order: the run, EM's flags, ``cells(groups of that kind)``, the default's
    flags."""
    from tcap_viz.anatomy import FOLLOWED, followed_apart, judges_disagreements

    def of_kind(groups: list[dict]) -> list[dict]:
        judged, followed = followed_apart(groups)
        if kind == FOLLOWED:
            return followed
        return judged if judged and judges_disagreements(judged) == (kind == "disagreement") else []

    runs = sorted((r for r in results if of_kind(r.get("confirmation") or [])),
                  key=lambda r: (cases.index(r["settings"]["case"]) if r["settings"]["case"] in cases else len(cases),
                                 r["settings"]["seed"]))
    if not runs:
        return []
    lines = ["", f"## {title}", "", intro, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in runs:
        before, after = r["ablation"]["unconfirmed"], r["ablation"]["default"]
        lines.append(" | ".join([f"| {r['settings']['case']} s{r['settings']['seed']}",
                                 f"{before['n_flagged']}, {before['f1']:.2f}", *cells(of_kind(r["confirmation"])),
                                 f"{after['n_flagged']}, {after['f1']:.2f} |"]))
    return lines


def _disagreement_table(results: list[dict], cases: list[str]) -> list[str]:
    """Every run where the heads and the vote disagreed: what EM flagged, each group of the disagreements as the
    scan judged it, and what the default flagged in the end."""
    return _judged_table(
        results, cases, "disagreement", "Where the heads and the vote disagree",
        "Runs where the plausibility vote was used and EM's flags differ from the vote's (`scan`'s `reconcile`): "
        "what only the heads flag (the base model finds the answers plausible) was confirmed group by group as a "
        "finding of the heads alone is (groups of at least 5 alike answers; the rest not examined), and what only "
        "the vote flags joined when it gives the answer of at least 5 samples both flag. Flagged and F1 before "
        "(EM's flags) and after (the default).",
        ["run", "EM: flagged, F1", "only the heads flag", "only the vote flags", "default: flagged, F1"],
        lambda groups: ["; ".join(_disagreement_cell(g) for g in groups if g["source"] == source) or "-"
                        for source in ("heads only", "vote only")])


def _confirmation_table(results: list[dict], cases: list[str]) -> list[str]:
    """Every run where the heads decided alone: what they flagged, each group as its confirmation judged it, and
    what the default flagged in the end."""
    return _judged_table(
        results, cases, "heads alone", "Confirmation of what the heads found alone",
        "Runs where the plausibility vote was not used (the base finds the target plausible, or clean data), so the "
        "heads decided alone and the scan confirmed each group of their finding by the trigger it hangs on "
        "(`tcap_viz/anatomy/confirm.py`): flagged and F1 before, each group (size, answer: the image cell or question "
        "words located, the dataset's samples carrying them and the share of those giving the group's answer; "
        "a group of a head not selected, examined when none of TCAP's groups was confirmed, is named by its head), "
        "and what the default flagged. Clean data: F1 is 0 by definition; read the flagged counts.",
        ["run", "unconfirmed: flagged, F1", "groups", "default: flagged, F1"],
        lambda groups: ["; ".join(map(_confirmation_cell, groups))])


def _followed_table(results: list[dict], cases: list[str]) -> list[str]:
    """Every run where flagged groups with an ordinary answer were followed to their trigger's carriers."""
    from tcap_viz.anatomy import FOLLOWED, ODD

    return _judged_table(
        results, cases, FOLLOWED, "Ordinary answers followed to their trigger",
        "Runs where the plausibility vote was used and flagged samples give an answer at least 5 samples not flagged "
        "give too: the base model finds such an answer plausible wherever the picture agrees, so the vote may see "
        "only part of the backdoor (`scan`'s `follow`). Each such group was followed to what it hangs on; the "
        "carriers of a confirmed trigger giving its answer are flagged too. Then what gives an answer fewer than 5 "
        "flagged samples give, carrying no confirmed trigger, is left out (odd answers). EM's flags, each group (as in "
        "the confirmation table), and what the default flagged in the end.",
        ["run", "EM: flagged, F1", "groups followed", "default: flagged, F1"],
        lambda groups: ["; ".join(f"{g['size']} odd answers left out" if g["source"] == ODD else
                                  _confirmation_cell(g | {"source": "TCAP"}) for g in groups)])


def render(results: list[dict], cases: list[str], stale: list[tuple[str, int]] = ()) -> str:
    """The markdown report of ``results``; ``stale``: the cases and seeds an earlier detector measured, listed."""
    by_case: dict[str, list[dict]] = {}
    for r in results:
        by_case.setdefault(r["settings"]["case"], []).append(r)
    measured = [c for c in cases if c in by_case]
    first = results[0]["settings"] if results else {}
    schedule = first.get("recipe", {}).get("schedule", {})
    seconds = sorted(r["finetune_s"] for r in results if r.get("finetune_s") is not None)
    lines = [
        "# Detection report: the fine-tuning-service testbed",
        "",
        "Produced by " + ", ".join(f"`{c}` ({n} case{'s' * (n > 1)})" for c, n in _commands(results).items())
        + " (in that order: those without `--no-retrain` made the retrainings the later ones read; each case's numbers are cached as JSON "
        "under the benchmark's folder, `runs/report/results/` by default; "
        "a run with other cases or seeds adds to it, and `--render` rewrites the report from all of them).",
        (f"A case: {first.get('n_train')} training samples of the customer shapes task, {first.get('n_test')} clean and "
         f"{first.get('n_test')} triggered test samples; a "
         f"{first.get('finetune', '-')} fine-tune of the shipped base model (`sample_data/base_model`) with the recipe of "
         f"{schedule.get('steps')} steps, batch {schedule.get('batch_size')}, learning rate {schedule.get('learning_rate')}; "
         "the scan in float32 with every detector at its defaults. Ground truth is used only to score."),
        f"Machines: {'; '.join(sorted({r['machine'] for r in results})) or '-'}. Fine-tune time per model there: "
        + (f"median {seconds[len(seconds) // 2]:.0f} s ({len(seconds)} timed; a model trained before with the same "
           "recipe is reused untimed)." if seconds else "not recorded."),
        "Numbers are mean ± standard deviation over the seeds, in percent.",
        (f"**Development cases** (marked *dev*): {', '.join(DEVELOPMENT)}: the default's choices were made on them "
         "([`LEVERS.md`](LEVERS.md)); the vote's cut was chosen on seed 0, which no case here uses. Every other row is "
         "reported on settings never tuned to it." if set(DEVELOPMENT) & set(measured) else
         "**Held out**: no case here is one the default's choices were made on ([`LEVERS.md`](LEVERS.md) names "
         "those); every row is reported on settings never tuned to it."),
        ("Detectors: *paper TCAP* is METHOD.md as written (`--preset paper`); *default* is the scan's (TCAP with the "
         "base model's plausibility vote; where the heads decide alone, their finding confirmed by the trigger it "
         "hangs on); *BYE* the attention-entropy baseline ([`BYE_FAITHFULNESS.md`]"
         "(BYE_FAITHFULNESS.md)); *Act. Clustering* and *Spectral Sig.* the classic defences on the answer row's hidden "
         "state, each response a class (tcap_viz/detection)."),
        "",
        "Attacks, with the defaults of `tcap-viz make-data`:",
        "",
    ]
    attacks = {}
    for r in results:
        s = r["settings"]
        if s["attack"] != "none":
            attacks[s["variant"]] = (f"{s['attack']} {json.dumps(s['attack_params'])}, target {s['target']!r}"
                                     + (f", only {s['poison_question_type']} questions" if s.get("poison_question_type")
                                        else ""))
    lines += [f"- {v}: {text}" for v, text in attacks.items()]

    def label(case: str) -> str:
        return f"{case} *dev*" if case in DEVELOPMENT else case

    lines += ["", "## Detection F1 (clean data: share of samples flagged)", "",
              "| case | seeds | poisoned | model clean acc | model ASR | " + " | ".join(DETECTORS.values()) + " |",
              "|---" * (5 + len(DETECTORS)) + "|"]
    for case in measured:
        rs = by_case[case]
        field = "flagged_fraction" if case == "clean" else "f1"
        cells = [_stat([(_detector_metrics(r, k) or {}).get(field) for r in rs]) for k in DETECTORS]
        lines.append(f"| {label(case)} | {len(rs)} | {rs[0]['metrics']['tcap']['n_true']} | "
                     f"{_stat([r['model']['clean_accuracy'] for r in rs])} | {_stat([r['model'].get('asr') for r in rs])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Precision, recall, AUROC and samples flagged, by detector", "",
              "| case | detector | precision | recall | F1 | AUROC | flagged (mean) |", "|---|---|---|---|---|---|---|"]
    for case in measured:
        for key, name in DETECTORS.items():
            ms = [_detector_metrics(r, key) for r in by_case[case]]
            ms = [m for m in ms if m]
            if ms:
                lines.append(f"| {label(case)} | {name} | {_stat([m['precision'] for m in ms])} | "
                             f"{_stat([m['recall'] for m in ms])} | {_stat([m['f1'] for m in ms])} | "
                             f"{_stat([m['auroc'] for m in ms])} | {_mean(m['n_flagged'] for m in ms):.0f} |")
    lines += ["", "## Ablation: each lever of the default, F1 (clean data: share flagged)", ""]
    lines += [f"- *{name}*: {text}" for name, text in ABLATION.items()]
    lines += ["", "| case | " + " | ".join(ABLATION) + " |", "|---" * (1 + len(ABLATION)) + "|"]
    for case in measured:
        field = "flagged_fraction" if case == "clean" else "f1"
        lines.append(f"| {label(case)} | " + " | ".join(
            _stat([r["ablation"][name][field] for r in by_case[case] if name in r["ablation"]]) for name in ABLATION) + " |")
    lines += _confirmation_table(results, cases)
    lines += _disagreement_table(results, cases)
    lines += _followed_table(results, cases)
    coherence = ("heads only", "default")
    lines += ["", "## Do the flagged samples share one answer? (the group-coherence lever)", "",
              ("Per seed: samples flagged, the share of them giving their most common answer, and how often that answer "
               "occurs among the samples not flagged. A backdoor's target collapses its group onto one answer that is "
               "rare elsewhere; a rule on it helps only if clean content groups do not do the same."), "",
              "| case | " + " | ".join(coherence) + " |", "|---" * (1 + len(coherence)) + "|"]
    for case in measured:
        lines.append(f"| {label(case)} | " + " | ".join(
            "; ".join(_coherence_cell(r["ablation"].get(name, {})) for r in by_case[case]) for name in coherence) + " |")
    retrained = [c for c in measured if any("retrained" in r for r in by_case[c])]
    if retrained:
        lines += ["", "## Retrained from the base without the flagged samples", "",
                  ("Beside it, the reference: the same fine-tune on only the truly clean samples (ground truth picks "
                   "them; evaluation only)."), "",
                  ("| case | removed (mean) | clean acc before | clean acc after | clean acc, clean-only reference | "
                   "ASR before | ASR after | ASR, clean-only reference |"), "|---|---|---|---|---|---|---|---|"]
        for case in retrained:
            rs = [r for r in by_case[case] if "retrained" in r]
            lines.append(f"| {label(case)} | {_mean(r['retrained']['removed'] for r in rs):.0f} | "
                         f"{_stat([r['model']['clean_accuracy'] for r in rs])} | "
                         f"{_stat([r['retrained']['clean_accuracy'] for r in rs])} | "
                         f"{_stat([r['clean_only']['clean_accuracy'] for r in rs])} | "
                         f"{_stat([r['model'].get('asr') for r in rs])} | {_stat([r['retrained'].get('asr') for r in rs])} | "
                         f"{_stat([r['clean_only'].get('asr') for r in rs])} |")
    lines += modality_section(by_case, measured, label)
    lines += _per_run_table(by_case, measured, label)
    lines += ["", "## Against the targets", ""] + [f"- {line}" for line in target_notes(by_case, measured)]
    if stale:
        seeds: dict[str, list[int]] = {}
        for case, seed in stale:
            seeds.setdefault(case, []).append(seed)
        lines += ["", "## Measured by an earlier detector, left out", "",
                  ", ".join(f"{label(c)} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))})" for c, s in seeds.items())
                  + ". Their numbers are not mixed into the tables above: `tcap-viz report` without `--render` "
                  "detects them anew from the cached scans (minutes), or fine-tunes again where the scans are gone."]
    listed = {case for case, _ in stale}
    missing = [c for c in cases if c not in by_case and c not in listed]
    if missing:
        lines += ["", "## Not measured yet", "", ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def modality_section(by_case: dict[str, list[dict]], cases: list[str], label) -> list[str]:
    """Which modality carries each backdoor (METHOD.md section 7), where it was measured."""
    rows = [c for c in cases if any("modality" in r for r in by_case[c])]
    if not rows:
        return []
    lines = ["", "## Which modality carries the backdoor (the modality-collapse paper's question)", "",
             ("On the first poisoned training samples of each case (ground truth picks them: this measures the backdoor "
              "the model learnt, not the detector), v(S) is their mean log-probability per token of the target when only "
              "the modalities in S keep their content (the image swapped for a clean sample's, the question for the "
              "nearest clean question: `tcap_viz.anatomy.modality_attribution`). phi_image and phi_text are the exact "
              "two-player Shapley values as shares of v(both) - v(none), the interaction CTI = v(both) - v(image) - "
              "v(text) + v(none) on the same scale (negative: either modality alone is enough; positive: they need each "
              "other). Per sample, the modality carrying it (a share of 75% or more); where at least 2 samples each read "
              "the image and the question, the backdoor goes two ways and is read as two routes. *Where*: the anatomy's "
              "trigger location on the first 6 of them (of each route, for two routes), by the procedure that examines a scan's flagged group "
              "(`tcap_viz.anatomy.examine`: the 8 x 8 image cell whose masking costs the target at least 0.1 nats and a "
              "quarter of v(both) - v(none); the question words, in at least 2 of the 6, whose deletion costs that much "
              "beyond what it costs clean questions' own answers, over the 6, and costs those clean answers under 0.1 "
              "nats; where no cell holds an image trigger, the pattern the poisons' images share and the square of cells "
              "it sits in, when masking the square costs that much; where no one word's deletion costs anything, the "
              "words the poisons' questions share that force the target), read with today's rules from the stored "
              "drops (results stored before the square and the words were read without them), and on how many seeds "
              "it reads the same."), "",
             ("| case | seeds | samples | v(both) - v(none), nats | phi_image | phi_text | CTI | samples: image / text / both / "
              "neither | reading (first seed) | where (first seed; seeds reading the same) |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for case in rows:
        ms = [r["modality"] for r in by_case[case] if "modality" in r]
        kinds = [k for m in ms for k in m.get("sample_modalities", [])]
        effect = _mean(m["values"]["both"] - m["values"]["none"] for m in ms)
        lines.append(f"| {label(case)} | {len(ms)} | {ms[0]['n_samples']} | {effect:.2f} | "
                     f"{_stat([m['shares']['image'] for m in ms])} | {_stat([m['shares']['text'] for m in ms])} | "
                     f"{_stat([m['shares']['interaction'] for m in ms])} | "
                     + " / ".join(str(kinds.count(k)) for k in ("image", "text", "both", "neither"))
                     + f" | {_reading(by_case[case])} | {_where(by_case[case])} |")
    return lines


def _per_run_table(by_case: dict[str, list[dict]], measured: list[str], label) -> list[str]:
    """Each seed's own numbers, which the means above hide: how far seeds spread, and which one missed."""
    def pct(value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"

    columns = ["model clean acc", "model ASR", *DETECTORS.values(), "BYE AUROC", "heads only", "vote alone",
               "retrained clean acc", "retrained ASR", "phi_text"]
    lines = ["", "## Per run", "", ("In percent; F1, or the share of samples flagged on clean data; phi_text is the "
                                    "question's share of the poisons' response (the modality table)."), "",
             "| case | seed | " + " | ".join(columns) + " |", "|---" * (2 + len(columns)) + "|"]
    for case in measured:
        field = "flagged_fraction" if case == "clean" else "f1"
        for r in by_case[case]:  # in the order of the seeds asked for
            cells = [r["model"]["clean_accuracy"], r["model"].get("asr"),
                     *[(_detector_metrics(r, k) or {}).get(field) for k in DETECTORS],
                     (_detector_metrics(r, "baseline") or {}).get("auroc"),
                     *[r["ablation"].get(name, {}).get(field) for name in ("heads only", "vote alone")],
                     r.get("retrained", {}).get("clean_accuracy"), r.get("retrained", {}).get("asr"),
                     r.get("modality", {}).get("shares", {}).get("text")]
            lines.append(f"| {label(case)} | {r['settings'].get('seed', '-')} | " + " | ".join(pct(c) for c in cells) + " |")
    return lines


def _reading(results: list[dict]) -> str:
    """The first seed's modality reading, by today's rules (a result stored before two routes were read
    from the samples says what its rules said then)."""
    return poisons_modality(next(r for r in results if "modality" in r)).reading()


def _where(results: list[dict]) -> str:
    """The first seed's trigger location, and on how many seeds it reads the same: the same place and words,
    whatever masking it costs or how many samples each route holds (every BadNet seed read "1 of 2" when
    the nats were compared too)."""
    anatomies = [poisons_anatomy(r) for r in results if "where" in r]
    places = [a.location() for a in anatomies]
    return f"{anatomies[0].where()} ({places.count(places[0])} of {len(places)})" if anatomies else "-"


def target_notes(by_case: dict[str, list[dict]], cases: list[str]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    notes = []
    for case in cases:
        rs = by_case[case]
        accuracy = _mean(r["model"]["clean_accuracy"] for r in rs)
        head = f"{case}: model clean accuracy {100 * accuracy:.1f} (>= 90: {verdict(accuracy >= TARGETS['clean_accuracy'])})"
        if case == "clean":
            share = _mean(r["metrics"]["tcap"]["flagged_fraction"] for r in rs)
            notes.append(f"{head}; {100 * share:.2f}% flagged (<= 1%: {verdict(share <= TARGETS['clean_flagged'])})")
            continue
        asr, f1 = _mean(r["model"]["asr"] for r in rs), _mean(r["metrics"]["tcap"]["f1"] for r in rs)
        line = (f"{head}, ASR {100 * asr:.1f} (>= 90: {verdict(asr >= TARGETS['asr'])}); default F1 {100 * f1:.1f} "
                f"(>= 95: {verdict(f1 >= TARGETS['f1'])})")
        done = [r for r in rs if "retrained" in r]
        if done:
            after = _mean(r["retrained"]["asr"] for r in done)
            drop = _mean(r["clean_only"]["clean_accuracy"] - r["retrained"]["clean_accuracy"] for r in done)
            line += (f"; retrained ASR {100 * after:.1f} (< 5: {verdict(after < TARGETS['retrained_asr'])}), clean accuracy "
                     f"{100 * drop:.1f} points under the clean-only reference (<= 2: "
                     f"{verdict(drop <= TARGETS['retrained_accuracy_drop'])})")
        notes.append(line)
    return notes

