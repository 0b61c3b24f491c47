"""The Python API: the same steps as the CLI, data -> model -> attention -> detection -> storage.

    from tcap_viz.pipeline import scan
    result = scan("sample_data/demo_model", "sample_data/demo/data.jsonl", "runs/demo")
    result.samples.sort_values("posterior", ascending=False).head()
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tcap_viz import __version__
from tcap_viz.attention.extract import Extraction, concatenate, extract_profiles, in_order
from tcap_viz.data import Dataset, DatasetError, load_dataset
from tcap_viz.detection import (
    PRESETS,
    ActivationClustering,
    BYEDetector,
    PlausibilityVote,
    SpectralSignatures,
    TCAPDetector,
    detection_metrics,
)
from tcap_viz.model.evaluate import response_logprob
from tcap_viz.storage.run_dir import CONFIG, HEADS, METRICS, SAMPLES, RunDir

EXTRACTION_VERSION = 2  # bump when extraction's numbers change, so old caches are not reused
#: Part of an anatomy cache's key: raise it when tcap_viz.anatomy computes something else.
ANATOMY_VERSION = 27
#: What the confirmation of a finding of the heads alone read (the anatomy of TCAP's groups), in the run.
CONFIRMATION_FILE = "confirmation.json"
#: The anatomy of the flagged groups with an ordinary answer, followed to their trigger (``follow``).
FOLLOWED_FILE = "followed.json"
CHUNK_SIZE = 256  # samples saved together: at most this much work is lost when a scan is interrupted


@dataclass
class ScanConfig:
    """Everything that shapes a scan's result; stored in the run's config.json."""

    batch_size: int = 16
    device: str | None = None  # cpu, cuda, cuda:1 ...; None: cuda when there is one
    dtype: str | None = None  # float32, bfloat16, float16; None: bfloat16 on a GPU, float32 on the CPU
    adapter: str | None = None  # a PEFT (LoRA) adapter on the model, folder or hub id
    device_map: str | None = None  # "auto": spread a model too large for one GPU over all of them
    trust_remote_code: bool = False  # run code from the model's repository (only when you trust it)
    allow_outside: bool = False  # read images outside the dataset's folder (only datasets you trust)
    # the model the scanned one was fine-tuned from, for the plausibility signal (a full fine-tune's
    # base); with `adapter` and no base_model, the model itself without the adapter
    base_model: str | None = None
    # "default", or "paper": METHOD.md's TCAP as written (detection.PRESETS), without the plausibility vote
    preset: str = "default"
    tcap: dict = field(default_factory=dict)  # TCAPDetector parameters, over the preset's
    baseline: dict = field(default_factory=dict)  # BYEDetector parameters
    plausibility: dict = field(default_factory=dict)  # PlausibilityVote parameters
    activation_clustering: dict = field(default_factory=dict)  # ActivationClustering parameters
    spectral_signatures: dict = field(default_factory=dict)  # SpectralSignatures parameters
    # a finding of the heads alone (no plausibility vote used) stands only as the carriers of a located
    # trigger that nearly all of them answer alike (anatomy.confirm; the model is asked again); with the
    # vote, where it and the heads disagree, the disagreements are judged (``reconcile``), and a flagged
    # ordinary answer is followed to its trigger's carriers (``follow``)
    confirm: bool = True

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset {self.preset!r}: choose one of {', '.join(PRESETS)}")


@dataclass
class ScanResult:
    run: RunDir
    dataset: Dataset
    extraction: Extraction
    tcap: TCAPDetector
    baseline: BYEDetector
    samples: pd.DataFrame
    heads: pd.DataFrame
    metrics: dict | None
    #: the classic defences on the answer row's hidden states, by name (HIDDEN_BASELINES)
    hidden_baselines: dict = field(default_factory=dict)
    #: the groups of a finding of the heads alone, as their confirmation judged them (``confirm``), or of
    #: where the heads and the vote disagreed (``reconcile``), and the ordinary answers followed
    #: (``follow``); None when the scan did not need one
    confirmation: list[dict] | None = None


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _source_id(source: str | Path) -> list[str]:
    """A local folder by its files (size and time), a hub id by its name."""
    path = Path(source)
    if path.is_dir():
        return sorted(_file_fingerprint(p) for p in path.iterdir() if p.is_file())
    return [str(source)]


def load_model(model: str | Path, config: ScanConfig):
    """The model as the scan config says to load it (device, dtype, adapter, device map)."""
    from tcap_viz.model.adapter import MLLMAdapter  # torch import only when a model is needed

    return MLLMAdapter.load(model, device=config.device, dtype=config.dtype, adapter=config.adapter,
                            device_map=config.device_map, trust_remote_code=config.trust_remote_code)


def model_key(model: str | Path, config: ScanConfig | None = None) -> str:
    """Identity of what turns a sample into profiles: the model's (and adapter's) files or hub ids,
    the dtype and the extraction code's version."""
    config = config or ScanConfig()
    payload = {"model": _source_id(model), "version": EXTRACTION_VERSION}
    if config.adapter:
        payload["adapter"] = _source_id(config.adapter)
    if config.dtype:
        payload["dtype"] = config.dtype
    base = base_model_of(model, config)
    if base is not None:
        payload["base"] = _source_id(base)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def base_model_of(model: str | Path, config: ScanConfig) -> str | None:
    """The model the scanned one was fine-tuned from, when the scan knows it."""
    if config.base_model:
        return str(config.base_model)
    return str(model) if config.adapter else None


def _image_fingerprint(path: Path) -> str:
    """What the scan read of an image: its size and time (or that it could not be found)."""
    try:
        stat = path.stat()
    except OSError as error:
        return f"unreadable:{type(error).__name__}"
    return f"{stat.st_mode & 0o170000}:{stat.st_size}:{stat.st_mtime_ns}"


def sample_keys(dataset: Dataset) -> dict[str, str]:
    """Sample id -> identity of everything its profile depends on: its record (system, question,
    answer, image path), its image file and whether images outside the folder are allowed. A
    restored or edited image changes it."""
    return {s.id: hashlib.sha256(json.dumps([s.record, str(s.image_path), _image_fingerprint(s.image_path),
                                             s.root is None],
                                            sort_keys=True, default=str).encode()).hexdigest()
            for s in dataset}


def cache_key(model: str | Path, dataset: Dataset, config: ScanConfig | None = None,
              keys: dict[str, str] | None = None) -> str:
    """Identity of an extraction's inputs: the model (`model_key`), and every sample in order with
    its image (`sample_keys`)."""
    keys = sample_keys(dataset) if keys is None else keys
    payload = {"model": model_key(model, config), "samples": [keys[s.id] for s in dataset]}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def parse_shard(text: str) -> tuple[int, int]:
    """"i/n" (0 <= i < n) -> (i, n); "auto" reads RANK and WORLD_SIZE, as torchrun and accelerate set them."""
    if text == "auto":
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"shard {text!r}: write it as i/n, e.g. 0/4 for the first of four, or 'auto'") from None
    if not 0 <= index < count:
        raise ValueError(f"shard {text!r}: in i/n, i must be in 0..n-1")
    return index, count


def extract_or_load(model: str | Path, dataset: Dataset, run: RunDir, config: ScanConfig,
                    on_progress: Callable[[int, int], None] | None = None, show_progress: bool = True,
                    shard: tuple[int, int] | None = None) -> Extraction | None:
    """Reuse the run's cached profiles when model and data are unchanged; extract otherwise.

    Extraction goes in chunks of CHUNK_SIZE samples, each saved as it finishes: an interrupted scan
    resumes at its first missing chunk, and `shard=(i, n)` does only every n-th chunk from the i-th
    (returning None), so n processes on n GPUs share one run folder. Without `shard`, the missing
    chunks are extracted, all chunks are merged into the run's profiles, and the chunks removed.
    """
    keys = sample_keys(dataset)
    key, mkey = cache_key(model, dataset, config, keys), model_key(model, config)
    cached = run.load_extraction(key)
    if cached is not None:
        return cached
    samples = list(dataset)
    if not samples:
        raise DatasetError(f"{dataset.path}: the dataset has no samples to scan")
    reused = run.reusable(mkey, keys)  # samples whose record and image did not change since the last scan
    unchanged = set(reused.ids) | set(reused.skipped) if reused else set()
    samples = [s for s in samples if s.id not in unchanged]
    n_chunks = -(-len(samples) // CHUNK_SIZE)
    done = run.load_chunks(key)
    todo = {c: samples[c * CHUNK_SIZE:(c + 1) * CHUNK_SIZE] for c in range(n_chunks)
            if c not in done and (shard is None or c % shard[1] == shard[0])}
    if todo:
        adapter = load_model(model, config)
        base_path = base_model_of(model, config)
        base = None if base_path is None else load_model(base_path, replace(config, adapter=None))
        total = sum(map(len, todo.values()))
        start = len(dataset) - total if shard is None else 0  # what is already done counts as progress
        bar = tqdm(total=total, desc="extract attention", unit="sample", disable=not show_progress)
        extracted = 0  # counted here: a disabled tqdm (the app's scans) counts nothing
        for c, chunk in todo.items():
            def progress(done_here: int, _total: int, before=extracted) -> None:
                bar.update(before + done_here - bar.n)
                if on_progress:
                    on_progress(start + before + done_here, start + total)

            done[c] = extract_profiles(adapter, chunk, config.batch_size, progress, show_progress=False)
            if base is not None:  # the plausibility signal: one pass of the base over the same samples
                scanned = {s.id: s for s in chunk}
                done[c].base_logprob = response_logprob(base, [scanned[i] for i in done[c].ids], config.batch_size)
            extracted += len(chunk)
            run.save_chunk(key, c, done[c])
        bar.close()
    if shard is not None:
        return None
    parts = ([reused] if reused else []) + [done[c] for c in range(n_chunks)]
    extraction = in_order(concatenate(parts), [s.id for s in dataset])
    run.save_extraction(extraction, key, mkey, keys)
    run.clear_chunks(key)
    return extraction


def extract_shard(model: str | Path, data: str | Path | Dataset, out: str | Path, shard: tuple[int, int],
                  config: ScanConfig | None = None, show_progress: bool = True) -> None:
    """Extract one shard's chunks into the run folder; a later `scan` without a shard merges and detects."""
    config = config or ScanConfig()
    dataset = data if isinstance(data, Dataset) else load_dataset(data, config.allow_outside)
    extract_or_load(model, dataset, RunDir(out), config, show_progress=show_progress, shard=shard)


def plausibility_votes(extraction: Extraction, config: ScanConfig) -> np.ndarray | None:
    """The base model's vote on each response, when the scan knows the base (and the preset takes it)."""
    if extraction.base_logprob is None or config.preset == "paper":
        return None
    return PlausibilityVote(**config.plausibility).fit(extraction.base_logprob).flagged_


def detect(extraction: Extraction, config: ScanConfig) -> tuple[TCAPDetector, BYEDetector]:
    """Fit TCAP (with the base model's plausibility vote when the scan knows the base) and the BYE
    baseline on what was extracted: no label reaches them."""
    tcap = TCAPDetector(**(PRESETS[config.preset] | config.tcap)).fit(extraction.profiles,
                                                                      plausibility_votes(extraction, config))
    baseline = BYEDetector(**config.baseline).fit(extraction.vision_entropy)
    return tcap, baseline


#: name (also its ScanConfig field and metrics key) -> (estimator, samples-table column prefix)
HIDDEN_BASELINES = {"activation_clustering": (ActivationClustering, "ac"),
                    "spectral_signatures": (SpectralSignatures, "ss")}


#: metrics key -> the detector's name in tables (CLI, app)
DETECTOR_NAMES = {"tcap": "TCAP", "baseline": "BYE", "activation_clustering": "Act. Clustering",
                  "spectral_signatures": "Spectral Sig."}


def detect_on_hidden(extraction: Extraction, dataset: Dataset, config: ScanConfig) -> dict:
    """Activation Clustering and Spectral Signatures on the answer row's hidden states, each
    response its class (the samples' responses are their input, as labels are a classifier's;
    the ground-truth poison labels never reach them)."""
    if extraction.hidden is None:
        return {}
    response = {s.id: s.response for s in dataset}
    responses = [response[i] for i in extraction.ids]
    return {name: estimator(**getattr(config, name)).fit(extraction.hidden, responses)
            for name, (estimator, _) in HIDDEN_BASELINES.items()}


def samples_table(dataset: Dataset, extraction: Extraction, tcap: TCAPDetector, baseline: BYEDetector,
                  hidden_baselines: dict | None = None) -> pd.DataFrame:
    """One row per dataset sample, skipped ones included with their reason."""
    heads = [f"L{l}H{h}" for l, h in tcap.profiler_.selected_heads_]
    kept = pd.DataFrame({
        "id": extraction.ids,
        "posterior": tcap.posterior_,
        "flagged": tcap.flagged_,
        "votes": tcap.votes_.sum(axis=1) if tcap.votes_.size else np.zeros(len(extraction.ids), int),
        "voting_heads": ["".join(map(str, v)) for v in tcap.votes_] if heads else "",
        "baseline_score": baseline.score_,
        "baseline_flagged": baseline.flagged_,
    })
    if extraction.base_logprob is not None:  # the plausibility signal and its vote
        kept["base_logprob"] = extraction.base_logprob
        kept["implausible"] = tcap.plausibility_
    for name, fitted in (hidden_baselines or {}).items():
        prefix = HIDDEN_BASELINES[name][1]
        kept[f"{prefix}_score"] = fitted.score_
        kept[f"{prefix}_flagged"] = fitted.flagged_
    base = pd.DataFrame({"id": [s.id for s in dataset], "index": [s.index for s in dataset],
                         "question": [s.question for s in dataset], "response": [s.response for s in dataset]})
    table = base.merge(kept, on="id", how="left")
    table["skipped"] = [extraction.skipped.get(i, "") for i in table["id"]]
    if dataset.has_ground_truth:  # for evaluation and display only; never read by the detectors
        table["poisoned_truth"] = dataset.labels()
    return table


def _cached_json(run: RunDir, file: str, key: list, compute: Callable[[], list]) -> list:
    """``compute()``, kept in ``file`` of the run under ``key`` (what it was computed from): a second
    open is instant, a changed input computes it again."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    try:
        stored = run.load_json(file) if run.has(file) else None
    except ValueError:  # cut short or not JSON: computed again and rewritten whole
        stored = None
    if isinstance(stored, dict) and stored.get("key") == digest:
        return stored["groups"]
    groups = compute()
    run.save_json(file, {"key": digest, "groups": groups})
    return groups


def _flagged_ids(table: pd.DataFrame) -> list[str]:
    return sorted(table.loc[table["flagged"].fillna(False).astype(bool), "id"])


def cached_anatomy(run: RunDir, file: str, model: str | Path, dataset: Dataset, config: ScanConfig,
                   table: pd.DataFrame, heads: list[tuple[int, int]], adapter: Callable[[], object],
                   per_group: int, grid: int, on_group: Callable[[int, int], None] | None = None) -> list[dict]:
    """The anatomy of the flagged rows' groups (``tcap_viz.anatomy``, as ``GroupAnatomy.to_dict``
    records), kept in ``file`` of the run under what it was computed from (the model and samples,
    the flagged set, the heads, the settings). ``adapter()`` loads the model, only when it is needed."""
    from tcap_viz.anatomy import anatomy

    key = [ANATOMY_VERSION, cache_key(model, dataset, config), _flagged_ids(table), heads, per_group, grid]
    return _cached_json(run, file, key, lambda: [g.to_dict() for g in anatomy(
        adapter(), dataset, table, heads, per_group=per_group, grid=grid, on_group=on_group)])


def needs_confirmation(tcap: TCAPDetector, config: ScanConfig) -> bool:
    """Whether the heads flagged something on their own, or singled out groups too few of them
    corroborate: no plausibility vote used, and not the paper's method as written."""
    return (config.confirm and config.preset != "paper" and not tcap.vote_used_
            and (bool(tcap.flagged_.any()) or tcap.uncorroborated_))


def confirm(model: str | Path, dataset: Dataset, run: RunDir, config: ScanConfig, table: pd.DataFrame,
            tcap: TCAPDetector, extraction: Extraction, show_progress: bool = True,
            on_step: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """A finding of the heads alone, confirmed (``anatomy.confirm``): TCAP's groups first; when none
    hangs on a trigger, the groups of the next ``NEXT_HEADS`` candidate heads by separation score, one
    head at a time, until one does. Where the selected heads agreed only by nesting (too few
    corroborate a group, so TCAP flags nothing), each selected head's group is judged alone before the
    next heads': a patch whose poisons one head holds among 322 and another as 81 of 81 is such a
    case (the held-out 'right' by a top-left patch, docs/LEVERS.md). A group that repeats one judged
    before (``anatomy.repeats``) is not judged again, and a next head with no other group does not count.
    ``posterior`` becomes the share
    of a confirmed trigger's carriers that answer alike, for each carrier giving that answer, and 0 for every other sample; TCAP's own
    posterior stays as ``tcap_posterior``. Returns the table and every group judged (``source``:
    "TCAP" or the head); the next heads' donors are samples neither they nor TCAP flagged (the modality swap's, those they did not flag). ``on_step(done,
    total)``: TCAP's groups, then each head whose groups are judged."""
    from tcap_viz.anatomy import CONSISTENT, NEXT_HEADS, PER_GROUP, REPEATED, anatomy, confirmed_posterior

    selected = [(int(l), int(h)) for l, h in tcap.profiler_.selected_heads_]
    alone = tcap.head_groups(extraction.profiles, selected) if tcap.uncorroborated_ else []
    following = tcap.next_candidates()  # their groups are computed as the walk reaches them
    suspects = _flagged_ids(table)  # what TCAP flagged stays out of the next heads' word donors: it may be the poisons
    key = [ANATOMY_VERSION, cache_key(model, dataset, config), suspects, selected,
           [(l, h) for l, h, _, _ in alone] + following, PER_GROUP, CONSISTENT, NEXT_HEADS, REPEATED]

    def judged() -> list[dict]:
        adapter = load_model(model, config)
        total = 1 + len(alone) + min(NEXT_HEADS, len(following))
        with tqdm(total=total, desc="confirming the heads' finding", unit="head", disable=not show_progress) as bar:
            done = [0]  # counted here: a disabled tqdm (the app's scans) counts nothing

            def step() -> None:
                done[0] += 1
                bar.update()
                if on_step:
                    on_step(done[0], total)

            if on_step:
                on_step(0, total)
            groups = [g.to_dict() | {"source": "TCAP"} for g in anatomy(adapter, dataset, table, selected,
                                                                       per_group=PER_GROUP)] if suspects else []
            step()
            nexts = 0
            walk = itertools.chain(alone, tcap.iter_head_groups(extraction.profiles, following))
            for k, (layer, head, posterior, votes) in enumerate(walk):
                if any(g["confirmed"] for g in groups) or nexts == NEXT_HEADS:
                    break
                ids = table["id"]  # skipped samples: no posterior, no vote
                head_votes = pd.Series(votes, index=extraction.ids).reindex(ids).fillna(0).astype(int).to_numpy()
                pseudo = table.assign(  # the head's target group, as if it alone had flagged it
                    posterior=pd.Series(posterior, index=extraction.ids).reindex(ids).to_numpy(),
                    flagged=head_votes.astype(bool), voting_heads=head_votes.astype(str))
                source = f"L{layer}H{head}"
                new = [g.to_dict() | {"source": source, "name": f"{g.group.name} of {source}"}
                       for g in anatomy(adapter, dataset, pseudo, [(layer, head)], per_group=PER_GROUP,
                                        suspects=suspects, judged=groups)]
                groups += new
                if k < len(alone) or new:
                    nexts += k >= len(alone)
                    step()
        return groups

    groups = _cached_json(run, CONFIRMATION_FILE, key, judged)
    table = table.copy()
    table["tcap_posterior"] = table["posterior"]
    scanned = table["skipped"] == ""
    table["posterior"] = np.where(scanned, confirmed_posterior(list(table["id"]), groups), np.nan)
    table["flagged"] = scanned & (table["posterior"] > tcap.threshold)
    return table, groups


def _judged_groups(model: str | Path, dataset: Dataset, run: RunDir, config: ScanConfig, table: pd.DataFrame,
                   mask: np.ndarray, suspects: set, selected: list[tuple[int, int]], source: str, file: str, desc: str,
                   show_progress: bool, on_step: Callable[[int, int], None] | None) -> list[dict]:
    """The anatomy of the groups of the samples in ``mask`` (``suspects`` kept from the donors), each record
    tagged with ``source`` and named after it, cached in ``file`` of the run under what it was computed from."""
    from tcap_viz.anatomy import CONSISTENT, PER_GROUP, anatomy

    key = [ANATOMY_VERSION, cache_key(model, dataset, config), source, sorted(table["id"].to_numpy()[mask]), selected,
           PER_GROUP, CONSISTENT]

    def judged() -> list[dict]:
        with tqdm(desc=desc, unit="group", disable=not show_progress) as bar:
            def step(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()
                if on_step:
                    on_step(done, total)

            return [g.to_dict() | {"source": source, "name": f"{source}: {g.group.name}"}
                    for g in anatomy(load_model(model, config), dataset, table.assign(flagged=mask), selected,
                                     per_group=PER_GROUP, on_group=step, suspects=suspects)]

    return _cached_json(run, file, key, judged)


def needs_reconciling(tcap: TCAPDetector, config: ScanConfig) -> bool:
    """Whether the heads and the plausibility vote both voted in the EM, so that where they disagree
    the scan judges the samples (``reconcile``)."""
    return config.confirm and config.preset != "paper" and tcap.vote_used_ and tcap.em_ is not None


def reconcile(model: str | Path, dataset: Dataset, run: RunDir, config: ScanConfig, table: pd.DataFrame,
              tcap: TCAPDetector, show_progress: bool = True,
              on_step: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Where the heads and the plausibility vote disagree, EM follows the larger camp, and the heads
    are several: the clean 'blue' answers heads single out beside a 'blue' backdoor outvote the vote
    (badnet_blue-10, seeds 2-3), and heads catching one route of a two-route backdoor outvote it on
    the other (dual_or-10, seed 3). So the disagreements are judged on their own. Samples only the
    heads flag, whose answers the base model finds plausible, are a finding of the heads alone: each
    group of at least ``MIN_SIZE`` alike is confirmed by the trigger it hangs on (``anatomy.confirm``;
    the model is asked again), the rest is not flagged. Samples only the vote flags join when they
    give an answer of the samples both flag (``anatomy.vote_joins``), at those samples' mean
    posterior. Every other sample keeps EM's posterior, which stays as ``tcap_posterior``. Returns the
    table and the judged groups (``source``: ``HEADS_ONLY`` or ``VOTE_ONLY``)."""
    from tcap_viz.anatomy import HEADS_ONLY, confirmed_posterior, unexamined, vote_joins
    from tcap_viz.anatomy.groups import MIN_SIZE, answer_key

    ids = table["id"].to_numpy()
    scanned = (table["skipped"] == "").to_numpy()
    flagged = table["flagged"].fillna(False).astype(bool).to_numpy() & scanned
    vote = table["implausible"].fillna(False).astype(bool).to_numpy() & scanned
    answers = table["response"].map(answer_key).to_numpy()
    heads_only = flagged & ~vote
    alike_answers = [a for a, n in zip(*np.unique(answers[heads_only], return_counts=True)) if n >= MIN_SIZE]
    alike = heads_only & np.isin(answers, alike_answers)
    selected = [(int(l), int(h)) for l, h in tcap.profiler_.selected_heads_]
    groups = []
    if alike.any():
        groups = _judged_groups(model, dataset, run, config, table, alike, set(ids[flagged | vote]), selected,
                                HEADS_ONLY, CONFIRMATION_FILE, "confirming what only the heads flag", show_progress,
                                on_step)
    if (heads_only & ~alike).any():
        groups.append(unexamined(HEADS_ONLY, "heads only: other answers", list(ids[heads_only & ~alike])))
    agreed = flagged & vote
    joined, by_vote = vote_joins(table["response"], agreed, vote & ~flagged, ids)
    groups += by_vote
    em = table["posterior"].to_numpy(dtype=float)
    posterior = np.where(heads_only, 0.0, em)
    for answer in set(answers[joined]):
        posterior[joined & (answers == answer)] = em[agreed & (answers == answer)].mean()
    posterior = np.maximum(posterior, confirmed_posterior(list(ids), groups))
    table = table.assign(tcap_posterior=em, posterior=np.where(scanned, posterior, np.nan))
    table["flagged"] = scanned & (table["posterior"] > tcap.threshold)
    return table, groups


def needs_following(tcap: TCAPDetector, config: ScanConfig) -> bool:
    """Whether the plausibility vote was used, so that a backdoor with an ordinary answer may be
    only partly flagged (``follow``)."""
    return config.confirm and config.preset != "paper" and tcap.vote_used_


def follow(model: str | Path, dataset: Dataset, run: RunDir, config: ScanConfig, table: pd.DataFrame,
           tcap: TCAPDetector, show_progress: bool = True,
           on_step: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """The base model finds an ordinary answer plausible wherever the picture agrees with it, so the
    plausibility vote sees only part of a backdoor whose target is one ('three' on count questions by a
    patch: 56 of its 100 poisons, docs/HELDOUT.md), where a foreign target is implausible on every
    poison. So each flagged group (``MIN_SIZE`` alike) whose answer as many samples not flagged give too is
    followed to what it hangs on (``anatomy.confirm``; the model is asked again): when that is a
    confirmed trigger, its carriers giving the answer are flagged, at its consistency. Then the flagged
    samples whose answer fewer than ``MIN_SIZE`` flagged samples give, carrying no confirmed trigger, are
    left out (``anatomy.odd_answers``): the vote's doubt about one picture, not a backdoor's target. The
    posterior before stays as ``tcap_posterior``. Returns the table and the groups followed (``source``:
    ``FOLLOWED``), with the odd answers as one more record (``ODD``)."""
    from tcap_viz.anatomy import (
        FOLLOWED,
        ODD,
        confirmed_posterior,
        odd_answers,
        unexamined,
    )
    from tcap_viz.anatomy.groups import MIN_SIZE, answer_key

    ids = table["id"].to_numpy()
    scanned = (table["skipped"] == "").to_numpy()
    flagged = table["flagged"].fillna(False).astype(bool).to_numpy() & scanned
    vote = table["implausible"].fillna(False).astype(bool).to_numpy() & scanned
    answers = table["response"].map(answer_key).to_numpy()
    ordinary = [a for a in set(answers[flagged]) if min((flagged & (answers == a)).sum(),
                                                        (scanned & ~flagged & (answers == a)).sum()) >= MIN_SIZE]
    chosen = flagged & np.isin(answers, ordinary)
    selected = [(int(l), int(h)) for l, h in tcap.profiler_.selected_heads_]
    groups = _judged_groups(model, dataset, run, config, table, chosen, set(ids[flagged | vote]), selected, FOLLOWED,
                            FOLLOWED_FILE, "following ordinary answers to their trigger", show_progress,
                            on_step) if chosen.any() else []
    before = table["posterior"].to_numpy(dtype=float)
    confirmed = confirmed_posterior(list(ids), groups)
    posterior = np.where(scanned, np.maximum(np.nan_to_num(before), confirmed), np.nan)
    odd = odd_answers(table["response"], scanned & (posterior > tcap.threshold), confirmed)
    if odd.any():
        posterior[odd] = 0.0
        groups.append(unexamined(ODD, "odd answers", list(ids[odd])))
    if not groups:
        return table, []
    table = table.assign(posterior=posterior)
    if "tcap_posterior" not in table:
        table["tcap_posterior"] = before
    table["flagged"] = scanned & (table["posterior"] > tcap.threshold)
    return table, groups


def evaluate(table: pd.DataFrame) -> dict:
    """Precision / recall / F1 / AUROC of TCAP and the baselines on the scanned samples."""
    scanned = table[table["skipped"] == ""]
    truth = scanned["poisoned_truth"].astype(bool).to_numpy()
    metrics = {
        "tcap": detection_metrics(truth, scanned["flagged"].astype(bool).to_numpy(), scanned["posterior"].to_numpy()),
        "baseline": detection_metrics(truth, scanned["baseline_flagged"].astype(bool).to_numpy(),
                                      -scanned["baseline_score"].to_numpy()),
    }
    for name, (_, prefix) in HIDDEN_BASELINES.items():
        if f"{prefix}_flagged" in scanned:
            metrics[name] = detection_metrics(truth, scanned[f"{prefix}_flagged"].astype(bool).to_numpy(),
                                              scanned[f"{prefix}_score"].to_numpy())
    return metrics | {"scanned": int(len(scanned)), "skipped": int(len(table) - len(scanned))}


def scan(model: str | Path, data: str | Path | Dataset, out: str | Path, config: ScanConfig | None = None,
         on_progress: Callable[[int, int], None] | None = None, show_progress: bool = True,
         on_confirm: Callable[[int, int], None] | None = None) -> ScanResult:
    """Extract (or reuse) profiles, detect, and write the run directory. ``on_progress(done, total)``
    counts samples extracted; ``on_confirm(done, total)`` the steps of a confirmation (``confirm``)."""
    config = config or ScanConfig()
    dataset = data if isinstance(data, Dataset) else load_dataset(data, config.allow_outside)
    run = RunDir(out)
    extraction = extract_or_load(model, dataset, run, config, on_progress, show_progress)
    if not extraction.ids:
        reasons = list(extraction.skipped.values())[:3]
        raise DatasetError(f"{dataset.path}: none of its {len(dataset)} samples could be read, so there is nothing "
                         "to detect on. First reasons:\n  " + "\n  ".join(reasons) + "\nFix them and scan again "
                         "(only the samples that change are read again).")
    tcap, baseline = detect(extraction, config)
    hidden_baselines = detect_on_hidden(extraction, dataset, config)
    table = samples_table(dataset, extraction, tcap, baseline, hidden_baselines)
    confirmed = None
    if needs_confirmation(tcap, config):
        table, confirmed = confirm(model, dataset, run, config, table, tcap, extraction, show_progress, on_confirm)
    elif needs_reconciling(tcap, config):
        table, confirmed = reconcile(model, dataset, run, config, table, tcap, show_progress, on_confirm)
        confirmed = confirmed or None  # no disagreement: nothing was judged
    if needs_following(tcap, config):
        table, followed = follow(model, dataset, run, config, table, tcap, show_progress, on_confirm)
        confirmed = (confirmed or []) + followed or None
    heads = tcap.heads_table()
    metrics = evaluate(table) if dataset.has_ground_truth else None
    run.save_table(SAMPLES, table)
    run.save_table(HEADS, heads)
    run.save_json(CONFIG, {"model": str(model), "data": str(dataset.path), "tcap_viz": __version__,
                           "scan": asdict(config), "tcap_params": tcap.get_params(),
                           "baseline_params": baseline.get_params()})
    if metrics is not None:
        run.save_json(METRICS, metrics)
    return ScanResult(run, dataset, extraction, tcap, baseline, table, heads, metrics, hidden_baselines, confirmed)
