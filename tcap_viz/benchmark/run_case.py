"""One benchmark case end to end: data, customer fine-tune, its quality, a scan, every detector
and lever scored, which modality carries the backdoor, and a retraining without what the default flagged. Each step's output is kept
under the benchmark's folder and reused, so an interrupted benchmark resumes."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tcap_viz.atomic import atomic_write_text
from tcap_viz.data import load_dataset, make_synthetic_splits, write_dataset

from .cases import DETECTION, case_settings, customer_recipe

#: The levers of the default detection, each on and off (computed from the scan's cached
#: extraction, no model): name -> what it is, for the report.
ABLATION = {
    "paper": "METHOD.md's TCAP as written (--preset paper)",
    "heads only": "today's head profiling and EM, no plausibility vote (the default before issue 12)",
    "vote as annotator": "the plausibility vote as one more EM annotator, heads chosen without it",
    "vote alone": "the plausibility vote alone (robust z < -4 of the base model's log-probability)",
    "unconfirmed": "heads chosen by agreement with the vote, the vote one more annotator; EM's flags kept as they are "
                   "(the default before the confirmation)",
    "default": "as *unconfirmed*, and what the heads flag without the vote confirmed by the trigger it hangs on: the "
               "carriers of a located cell (matched by the pattern of the samples whose answer masking it costs) or words "
               "that at least 90% of them answer alike (a group going two ways: the cell located on its image route's "
               "samples, the words on its question route's; "
               "without a used vote, when "
               "none of the groups is, the groups of the next 16 candidate heads with a group not judged before, one head "
               "at a time); what only the "
               "vote flags joined when it gives the answer of at least 5 samples both flag; a flagged ordinary answer "
               "followed to its confirmed trigger's carriers, and an answer fewer than 5 flagged samples give, "
               "carrying no confirmed trigger, left out (the scan's default)",
}


#: Poisoned training samples the modality attribution is measured on (the first ones in the data),
#: and the first of them the trigger is located on (occlusion costs a pass per image cell; of each
#: route, where the backdoor goes two ways).
MODALITY_SAMPLES = 24
LOCATE_SAMPLES = 6


def backdoor_anatomy(adapter, train, target: str) -> dict:
    """Which modality carries the backdoor and where its trigger sits, measured on its own poisoned
    samples by the procedure that examines a scan's flagged group (``tcap_viz.anatomy.examine``):
    ``modality``, and ``where``: the raw drops, which ``poisons_anatomy`` reads with today's rules, and
    what was located beyond one cell or word (a pattern over the image and the square it sits in, words
    standing in for each other) with how many samples carry it and give the target; ``routes``, the samples
    each route was located on where the backdoor goes two ways."""
    from tcap_viz.anatomy import FlaggedGroup, examine, modality_attribution

    poisons = [s for s in train if s.poisoned]
    clean = [s for s in train if not s.poisoned]
    modality = modality_attribution(adapter, poisons[:MODALITY_SAMPLES], clean)
    first = {i for ids in modality.routes().values() for i in ids[:LOCATE_SAMPLES]}
    located = [s for s in poisons[:MODALITY_SAMPLES] if s.id in first] or poisons[:LOCATE_SAMPLES]
    found = examine(adapter, FlaggedGroup("poisons", target, [s.id for s in poisons], 0), located, clean, list(train),
                    modality=modality)
    return {"modality": modality.to_dict(),
            "where": {"occlusion": found.occlusion.round(4).tolist(), "words": found.words.head(10).to_dict("records"),
                      "samples": len(located), "spread": found.spread, "phrase": found.phrase,
                      "block": None if found.block is None else list(found.block), "block_drop": found.block_drop,
                      "carriers": None if found.carriers is None else len(found.carriers),
                      "answering": len(found.answering), "routes": found.routes}}


def _located(result: dict) -> bool:
    """Whether a result has what today's ``poisons_anatomy`` reads: the raw drops (the clean questions'
    too), what was located beyond one cell or word, and, for a backdoor going two ways, each route's."""
    where = result.get("where", {})
    return ("occlusion" in where and "block" in where and all("clean_drop" in w for w in where.get("words", []))
            and ("routes" in where or not poisons_modality(result).two_routes()))


def poisons_modality(result: dict):
    """A case's stored modality attribution (``tcap_viz.anatomy.ModalityAttribution``), read by today's rules."""
    from tcap_viz.anatomy import ModalityAttribution

    m = result["modality"]
    return ModalityAttribution(m["values"], m["n_samples"], m["per_sample"], m.get("ids"))


def poisons_anatomy(result: dict):
    """A case's poisons as an anatomy group (``tcap_viz.anatomy.GroupAnatomy``), rebuilt from what
    ``backdoor_anatomy`` stored, so that its ``where()`` applies the rules of today's code (a result
    measured before the square and the words were stored reads without them)."""
    import numpy as np
    import pandas as pd

    from tcap_viz.anatomy import FlaggedGroup, GroupAnatomy

    where = result["where"]
    return GroupAnatomy(FlaggedGroup("poisons", result["settings"]["target"], [], 0), [],
                        poisons_modality(result), np.asarray(where["occlusion"]),
                        pd.DataFrame(where["words"], columns=["word", "drop", "samples", "share", "clean_drop"]), None,
                        pd.DataFrame(), spread=where.get("spread", False), phrase=where.get("phrase", []),
                        block=None if where.get("block") is None else tuple(where["block"]),
                        block_drop=where.get("block_drop"), routes=where.get("routes", {}))


def confirmation_record(groups: list[dict] | None) -> list[dict] | None:
    """What the scan's confirmation judged, group by group, without the member lists (None: none ran)."""
    if groups is None:
        return None
    return [{"source": g.get("source", "TCAP"), "size": g["size"], "response": g["response"], "region": g["region"],
             "trigger_words": g["trigger_words"], "spread": g.get("spread", False), "phrase": g.get("phrase", []),
             "block": g.get("block"),
             "carriers": None if g["carriers"] is None else len(g["carriers"]), "answering": len(g["answering"]),
             "consistency": g["consistency"], "confirmed": g["confirmed"]}
            | ({"joined": g["joined"], "agreed": g["agreed"]} if "joined" in g else {}) for g in groups]


def machine(device: str | None) -> str:
    """The GPU, or the CPU's model, cores and torch threads, with the torch version."""
    import os

    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), platform.processor())
    return f"{cpu or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def ablation(result, truth: np.ndarray) -> dict:
    """Every lever's flags from the scan's extraction, scored (labels only score)."""
    from tcap_viz.detection import PRESETS, TCAPDetector, detection_metrics, dominant_response
    from tcap_viz.pipeline import ScanConfig, plausibility_votes

    profiles, extraction = result.extraction.profiles, result.extraction
    vote = plausibility_votes(extraction, ScanConfig())
    fitted = {"paper": TCAPDetector(**PRESETS["paper"]).fit(profiles), "heads only": TCAPDetector().fit(profiles),
              "unconfirmed": result.tcap}
    if vote is not None:
        fitted["vote as annotator"] = TCAPDetector(anchor_on_plausibility=False).fit(profiles, vote)
    flags = {name: d.flagged_ for name, d in fitted.items()}
    scores = {name: detection_metrics(truth, d.flagged_, d.posterior_) for name, d in fitted.items()}
    scanned = result.samples[result.samples["skipped"] == ""]  # the scan's own flags, confirmation included
    flags["default"] = scanned["flagged"].astype(bool).to_numpy()
    scores["default"] = detection_metrics(truth, flags["default"], scanned["posterior"].to_numpy())
    if vote is not None:
        flags["vote alone"] = vote
        scores["vote alone"] = detection_metrics(truth, vote, -extraction.base_logprob)
    response = {s.id: s.response for s in result.dataset}
    responses = [response[i] for i in extraction.ids]
    for name, flagged in flags.items():  # does what it flagged share one answer (a target, or a content group)?
        _, share, outside = dominant_response(responses, flagged) or (None, float("nan"), 0)
        scores[name] |= {"dominant_share": share, "dominant_outside": outside}
    return scores


def _training_key(samples, recipe, base: Path) -> str:
    """Identity of a fine-tune by what it learns from: the recipe, the base's files and every sample in order,
    its image by content (each case has its own copy of the same clean images; a checkout's path is no part)."""
    digest = hashlib.sha256(json.dumps(asdict(recipe), default=str).encode())
    if base.is_dir():
        for file in sorted(f for f in base.iterdir() if f.is_file()):
            digest.update(file.name.encode() + hashlib.sha256(file.read_bytes()).digest())
    else:
        digest.update(str(base).encode())  # a hub id
    for sample in samples:
        digest.update(json.dumps([sample.system, sample.question, sample.response]).encode())
        digest.update(hashlib.sha256(sample.image_path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def run_case(work: Path, base: Path, variants: dict, case: str, seed: int, finetune_kind: str = "lora",
             device: str | None = None, threads: int | None = None, steps: int | None = None,
             retrain: bool = True, size: tuple[int, int] = (2000, 200), command: str = "",
             results: Path | None = None) -> dict:
    """All measurements of one case, cached as JSON under ``results`` (default ``work/results``) so the
    report can be rebuilt without rerunning; ``command``: what produced it, quoted by the report."""
    import torch

    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.evaluate import model_quality
    from tcap_viz.model.finetune import finetune
    from tcap_viz.pipeline import ScanConfig, scan

    if threads:
        torch.set_num_threads(threads)
    work, base = Path(work), Path(base)
    settings = case_settings(case, seed, finetune_kind, base, variants, steps, size)
    recipe = customer_recipe(finetune_kind, steps, seed)
    name = f"{case}-s{seed}-{finetune_kind}-{recipe.schedule.steps}"
    result_file = (Path(results) if results is not None else work / "results") / f"{name}.json"
    previous = {}
    if result_file.exists():
        result = previous = json.loads(result_file.read_text())
        if {**result["settings"], "detection": DETECTION} != settings:
            raise ValueError(f"{result_file} was measured with other settings than today's; delete "
                             f"{work}/*/{name}* to measure it again")
        current = result["settings"]["detection"] == DETECTION  # else: detected anew, from the cached scan
        attacked = settings["attack"] != "none"
        if current and ("retrained" in result or not retrain or not attacked) and (not attacked or _located(result)):
            return result
    splits = work / "data" / f"{case}-s{seed}"
    stamp = splits / "settings.json"
    data_settings = {k: settings[k] for k in ("attack", "attack_params", "target", "poison_rate", "seed", "n_train",
                                              "n_test")} \
        | {"poison_question_type": settings.get("poison_question_type")}
    if not splits.exists():
        make_synthetic_splits(splits, n_train=size[0], n_test=size[1], attack=settings["attack"],
                              poison_rate=settings["poison_rate"], target=settings["target"], seed=seed,
                              attack_params=variants.get(settings["variant"], {}).get("attack_params"),
                              poison_question_type=settings.get("poison_question_type"))
        stamp.write_text(json.dumps(data_settings))
    if json.loads(stamp.read_text()) != data_settings:
        raise ValueError(f"{splits} was made with other settings; delete it and the case's models and runs")
    train = load_dataset(splits / "train" / "data.jsonl")

    def trained(data, out: Path) -> tuple[Path, float | None]:
        """The fine-tuned model, and how long its fine-tune took (kept beside it; None if not recorded)."""
        timing = work / "timing" / f"{out.name}.json"
        if not out.exists():
            started = time.time()
            try:
                finetune(data, out, recipe, base=base, device=device, show_progress=False)
            except OSError:  # another worker's case put the same retraining in place first: the same model
                if not out.exists():
                    raise
            else:
                timing.parent.mkdir(parents=True, exist_ok=True)
                timing.write_text(json.dumps({"seconds": round(time.time() - started, 1), "machine": machine(device)}))
        return out, json.loads(timing.read_text())["seconds"] if timing.exists() else None

    def loaded(out: Path) -> MLLMAdapter:
        if finetune_kind == "lora":
            return MLLMAdapter.load(base, device=device, dtype="float32", adapter=out)
        return MLLMAdapter.load(out, device=device, dtype="float32")

    def quality(out: Path, key: str | None = None) -> dict:  # cached: generation is the slow part of a re-measure
        cached = work / "quality" / f"{key or out.name}.json"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(model_quality(loaded(out), splits)))
        return json.loads(cached.read_text())

    model, seconds = trained(train, work / "models" / name)
    # the service knows the base either way: with an adapter the scan finds it, a full fine-tune names it
    config = ScanConfig(device=device, dtype="float32", adapter=str(model) if finetune_kind == "lora" else None,
                        base_model=None if finetune_kind == "lora" else str(base))
    started = time.time()
    scanned = scan(base if finetune_kind == "lora" else model, splits / "train" / "data.jsonl",
                   work / "runs" / name, config, show_progress=False)
    scan_s = round(time.time() - started, 1)
    truth = scanned.samples.loc[scanned.samples["skipped"] == "", "poisoned_truth"].astype(bool).to_numpy()
    result = {"settings": settings, "command": command, "machine": machine(device), "finetune_s": seconds,
              "model": quality(model), "scan_s": scan_s,
              "metrics": scanned.metrics, "ablation": ablation(scanned, truth),
              "selected_heads": [list(h) for h in scanned.tcap.profiler_.selected_heads_],
              "confirmation": confirmation_record(scanned.confirmation)}
    if settings["attack"] != "none":  # the backdoor's own anatomy: ground truth picks its samples (evaluation)
        result |= backdoor_anatomy(loaded(model), train, settings["target"])
    if settings["attack"] != "none":
        table = scanned.samples
        keep = set(table.loc[~table["flagged"].fillna(False).astype(bool), "id"])
        truly_clean = {s.id for s in train if not s.poisoned}  # the reference: only the clean samples
        kept_ids = {"retrained": keep, "clean_only": truly_clean}
        removals = {key: hashlib.sha256(" ".join(sorted(s.id for s in train if s.id not in kept)).encode()).hexdigest()[:12]
                    for key, kept in kept_ids.items()}
        kept_samples = {key: [s for s in train if s.id in kept] for key, kept in kept_ids.items()}
        # a retraining is named by what it learns from, so a changed detector never reuses a stale one, and
        # the cases of one seed and rate, whose clean samples are the same, share theirs (one fine-tune, not one a case)
        retrains = {key: work / "models" / f"retrained-{_training_key(kept, recipe, base)}"
                    for key, kept in kept_samples.items()}
        # without retrain, retrainings already made are still read (a re-measure does not lose them), and
        # the command that made them is kept, so the report quotes what reproduces them
        made = all(out.exists() for out in retrains.values())
        # a retraining recorded with the same removal is the same model (seeded): a re-measure from a fresh
        # clone, where the models are gone, keeps its numbers instead of dropping or redoing them
        recorded = {key: previous[key] for key in removals if previous.get(key, {}).get("removal") == removals[key]}
        if not retrain and not made and len(recorded) == len(removals):
            result |= recorded
            result["retrain_command"] = previous.get("retrain_command") or previous.get("command")
        elif retrain or made:
            result["retrain_command"] = (previous.get("retrain_command") or previous.get("command")
                                         if made and "retrained" in previous else command)
            for key, out in retrains.items():
                kept = kept_samples[key]
                cleaned = work / "cleaned" / f"{name}-{removals[key]}" / "data.jsonl"
                if not cleaned.exists():
                    write_dataset(kept, cleaned)
                # its images stay in the case's data folder, which this benchmark made
                retrained, _ = trained(load_dataset(cleaned, allow_outside=True), out)
                result[key] = (quality(retrained, f"{name}-retrained-{removals[key]}")  # its own triggered test
                               | {"removed": len(train) - len(kept), "removal": removals[key]})
    result_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(result_file, json.dumps(result, indent=1))
    return result
