"""One analyst's view of one run: what the app shows, as plain Python (no gradio).

The app's views call only this class, so every view can be tested, scripted and
benchmarked without a browser:

    from tcap_viz.review.session import ReviewSession
    session = ReviewSession("sample_data/demo_model", "sample_data/demo/train/data.jsonl", "runs/demo").open()
    session.decide(session.queue().iloc[0]["id"], "poison", reviewer="ana")
    session.export()
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tcap_viz.anatomy import PER_GROUP, FlaggedGroup, flagged_groups
from tcap_viz.attention.explain import SampleAttention, explain_sample
from tcap_viz.data import Sample, load_image
from tcap_viz.demo import DEMO_DIR
from tcap_viz.detection.head_profiler import HeadMixture
from tcap_viz.detection.response_classes import dominant_response
from tcap_viz.detection.tcap import head_statistic
from tcap_viz.pipeline import ScanConfig, ScanResult, cached_anatomy, evaluate, load_model, scan
from tcap_viz.review.sample_map import sample_map
from tcap_viz.storage.decisions import DECISIONS, PENDING, DecisionLog
from tcap_viz.storage.export import ExportResult, export_cleaned, removal_reasons
from tcap_viz.storage.run_dir import CONFIG

DECISIONS_FILE = "decisions.sqlite"
ANATOMY_FILE = "anatomy.json"
FLAG_FILTERS = ("all", "flagged", "not flagged")
DECISION_FILTERS = ("all", PENDING, *DECISIONS)
SORTABLE = ("posterior", "id", "votes", "baseline_score", "decision", "base_logprob")


@dataclass
class SampleQuery:
    """A filter, sort and page of the samples table (applied on the server)."""

    min_posterior: float = 0.0
    max_posterior: float = 1.0
    flag: str = "all"
    decision: str = "all"
    split: str = "all"
    text: str = ""
    ids: frozenset[str] | None = None  # e.g. a selection on the map
    sort_by: str = "posterior"
    descending: bool = True
    page: int = 0
    page_size: int = 50


@dataclass
class SampleDetail:
    """Everything the detail view draws for one sample."""

    sample: Sample
    row: pd.Series  # the sample's line of `table()`
    image: object  # PIL image
    attention: SampleAttention | None  # None when the sample was skipped
    contributions: pd.DataFrame  # selected heads' votes and log-likelihood ratios
    error: str = ""


@dataclass
class HeadView:
    """One head's mixture fit over the samples, for the heads view."""

    layer: int
    head: int
    values: np.ndarray  # the head statistic, min-max normalised as the mixture saw it
    mixture: HeadMixture
    info: pd.Series  # the head's line of the heads table
    truth: np.ndarray | None  # ground truth of the scanned samples, for display only


class ReviewSession:
    """A run (scanned on first open, cached after), its decisions and its exports."""

    def __init__(self, model: str | Path, data: str | Path, run: str | Path, config: ScanConfig | None = None,
                 decisions: str | Path | None = None):
        self.model, self.data, self.run_path = str(model), Path(data), Path(run)
        self.config = config or ScanConfig()
        self.log = DecisionLog(decisions or self.run_path / DECISIONS_FILE)
        self.run_name = str(self.run_path.resolve())
        self._lock = threading.Lock()
        self._result: ScanResult | None = None
        self._adapter = None
        self._review_lock = threading.Lock()
        self._review: pd.DataFrame | None = None  # samples with split and standing decision, by row
        self._seen_event = 0  # the newest log event `_review` reflects

    @classmethod
    def from_run(cls, run: str | Path, device: str | None = None) -> "ReviewSession":
        """The session of a run folder that `tcap-viz scan` wrote, with the model, data and scan
        settings its config.json recorded (``device`` overrides where the model runs)."""
        path = Path(run) / CONFIG
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            scan_settings = dict(stored.get("scan", {}))
            if device is not None:
                scan_settings["device"] = device
            return cls(stored["model"], stored["data"], run, ScanConfig(**scan_settings))
        except FileNotFoundError:
            raise ValueError(f"{path} not found: give a run folder that `tcap-viz scan --out` wrote") from None
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a run's config ({type(err).__name__}: {err}); "
                             "scan again to rewrite it") from None

    # -- opening ---------------------------------------------------------------------------------
    def open(self, on_progress: Callable[[int, int], None] | None = None,
             on_confirm: Callable[[int, int], None] | None = None) -> "ReviewSession":
        """Scan (or read the cached scan); safe to call from several requests at once. The callbacks
        are `scan`'s: samples extracted, then the steps of a confirmation."""
        with self._lock:
            if self._result is None:
                self._result = scan(self.model, self.data, self.run_path, self.config,
                                    on_progress=on_progress, show_progress=False, on_confirm=on_confirm)
        return self

    @property
    def result(self) -> ScanResult:
        """The scan; opened on first use, so the API works after a restart before any page load."""
        if self._result is None:
            self.open()
        return self._result

    @property
    def dataset(self):
        return self.result.dataset

    @property
    def default_threshold(self) -> float:
        return float(self.result.tcap.threshold)

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {sample_id: i for i, sample_id in enumerate(self.result.extraction.ids)}

    # -- tables ----------------------------------------------------------------------------------
    def table(self, threshold: float | None = None) -> pd.DataFrame:
        """The samples table with the live flag and each sample's standing decision.

        The decisions follow the log by its difference since the last call (`changes_since`), so
        a view after a decision costs the same at the millionth event as at the first; callers
        get a copy.
        """
        return self._flag(self._reviewed(), threshold)

    def row(self, sample_id: str, threshold: float | None = None) -> pd.Series:
        """One sample's line of `table()`, without copying the whole table."""
        return self._flag(self._reviewed([self._position[sample_id]]), threshold).iloc[0]

    def _flag(self, table: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
        threshold = self.default_threshold if threshold is None else threshold
        table["flagged"] = (table["posterior"] > threshold) & (table["skipped"] == "")
        return table

    @cached_property
    def _position(self) -> dict[str, int]:
        """Sample id -> row of the samples table (ids are unique: load_dataset refuses duplicates)."""
        return {sample_id: i for i, sample_id in enumerate(self.result.samples["id"])}

    def _reviewed(self, rows: list[int] | None = None) -> pd.DataFrame:
        """A copy of the samples table (or of `rows`) with split and standing decision, up to date."""
        with self._review_lock:
            if self._review is None:
                review = self.result.samples.copy()
                review["decision"], review["reviewer"] = PENDING, ""
                review["split"] = [str(self.dataset.by_id(i).record.get("split", "")) for i in review["id"]]
                self._review, self._seen_event = review, 0
            changed, newest = self.log.changes_since(self.run_name, self._seen_event)
            if newest != self._seen_event:
                known = changed[changed["sample_id"].isin(self._position.keys())]
                decided = [self._position[i] for i in known["sample_id"]]
                columns = [self._review.columns.get_loc(c) for c in ("decision", "reviewer")]
                self._review.iloc[decided, columns] = known[["decision", "reviewer"]].to_numpy()
                self._seen_event = newest
            return (self._review if rows is None else self._review.iloc[rows]).copy()

    def splits(self) -> list[str]:
        return sorted({str(s.record["split"]) for s in self.dataset if "split" in s.record})

    def query(self, q: SampleQuery, threshold: float | None = None) -> tuple[pd.DataFrame, int]:
        """One page of the filtered, sorted table and the number of matching rows."""
        table = self.table(threshold)
        posterior = table["posterior"].fillna(0.0)
        keep = (posterior >= q.min_posterior) & (posterior <= q.max_posterior)
        if q.flag != "all":
            keep &= table["flagged"] == (q.flag == "flagged")
        if q.decision != "all":
            keep &= table["decision"] == q.decision
        if q.split != "all":
            keep &= table["split"] == q.split
        if q.text.strip():
            text = q.text.strip()
            keep &= (table["id"].str.contains(text, case=False, regex=False)
                     | table["question"].str.contains(text, case=False, regex=False)
                     | table["response"].str.contains(text, case=False, regex=False))
        if q.ids is not None:
            keep &= table["id"].isin(q.ids)
        if q.sort_by not in SORTABLE:
            raise ValueError(f"sort_by must be one of {SORTABLE}, got {q.sort_by!r}")
        if q.sort_by not in table:
            raise ValueError(f"this run has no {q.sort_by!r}: the base model's log-probabilities come with a scan "
                             "that knows the base (--adapter, or --base-model for a full fine-tune)")
        matched = table[keep].sort_values(q.sort_by, ascending=not q.descending, kind="stable", na_position="last")
        start = max(q.page, 0) * q.page_size
        return matched.iloc[start:start + q.page_size], int(len(matched))

    def counts(self, threshold: float | None = None) -> dict[str, int]:
        """Flagged, and how the review of the flagged samples stands."""
        table = self.table(threshold)
        flagged = table[table["flagged"]]
        counts = {"samples": len(table), "skipped": int((table["skipped"] != "").sum()), "flagged": len(flagged)}
        counts.update({d: int((flagged["decision"] == d).sum()) for d in (*DECISIONS, PENDING)})
        counts["decided outside the flagged set"] = int(((table["decision"] != PENDING) & ~table["flagged"]).sum())
        return counts

    def metrics(self, threshold: float | None = None) -> dict | None:
        """TCAP at the live threshold and the baseline, against labels the detectors never saw."""
        if not self.dataset.has_ground_truth:
            return None
        table = self.table(threshold)
        scanned = table[table["skipped"] == ""]
        return evaluate(table) | {"truth": scanned["poisoned_truth"].astype(bool).to_numpy(),
                                  "tcap_score": scanned["posterior"].to_numpy(),
                                  "baseline_score": -scanned["baseline_score"].to_numpy()}

    def common_responses(self, threshold: float | None = None, top: int = 5) -> pd.DataFrame:
        """The answers most frequent among the flagged samples, against the whole dataset.

        A backdoor's target answer dominates the flagged set and is rare elsewhere; a flagged
        group that is a clean content mode (one colour, one question type) answers like the rest
        of the data. A reviewer reads this before opening samples one by one.
        """
        table = self.table(threshold)
        flagged = table.loc[table["flagged"], "response"].value_counts()
        overall = table["response"].value_counts()
        common = pd.DataFrame({"response": flagged.index[:top], "flagged": flagged.values[:top]})
        common["share of flagged"] = (common["flagged"] / max(int(flagged.sum()), 1)).round(3)
        common["in the dataset"] = common["response"].map(overall).astype(int)
        return common

    def dominant_response(self, threshold: float | None = None) -> tuple[str, float, int] | None:
        """The flagged samples' most common answer, its share of them and how often it occurs
        outside them (``detection.dominant_response``); None when nothing is flagged."""
        table = self.table(threshold)
        return dominant_response(table["response"], table["flagged"])

    # -- triage ----------------------------------------------------------------------------------
    def queue(self, threshold: float | None = None, pending_only: bool = False) -> pd.DataFrame:
        """Flagged samples, most suspicious first."""
        table = self.table(threshold)
        queue = table[table["flagged"]].sort_values("posterior", ascending=False, kind="stable")
        return queue[queue["decision"] == PENDING] if pending_only else queue

    def decide(self, sample_id: str, decision: str, reviewer: str, note: str = "") -> int:
        self.dataset.by_id(sample_id)  # an unknown id is an error, not a silent row
        return self.log.record(self.run_name, sample_id, decision, reviewer, note)

    def undo(self, reviewer: str) -> str | None:
        """Take back the reviewer's latest standing decision (a whole group's, when it was a group
        decision); returns its sample id (the group's latest)."""
        return (self.undo_decisions(reviewer) or [None])[0]

    def undo_decisions(self, reviewer: str) -> list[str]:
        """As `undo`, returning every sample whose decision was taken back."""
        self.result  # open the run first: nothing is written when it cannot be read
        return [sample_id for _, sample_id in self.log.undo_batch(self.run_name, reviewer)]

    def groups(self, threshold: float | None = None) -> list[FlaggedGroup]:
        """The flagged samples in groups by their shared answer (``anatomy.flagged_groups``; no model)."""
        return flagged_groups(self.table(threshold), self.selected_heads())

    def decide_group(self, name: str, decision: str, reviewer: str, note: str = "",
                     threshold: float | None = None) -> list[str]:
        """One decision for every sample of a group (as ``groups`` names it at this threshold): each
        sample its own event, tagged with the group, so `undo` takes the group back as one."""
        group = next((g for g in self.groups(threshold) if g.name == name), None)
        if group is None:
            raise KeyError(f"no group {name!r} at this threshold; the groups are listed in the Anatomy tab")
        batch = f"{name} {group.response!r}:{uuid.uuid4().hex[:12]}"
        self.log.record_many(self.run_name, group.ids, decision, reviewer, note, batch=batch)
        return group.ids

    def export(self, rule: str = "confirmed", threshold: float | None = None,
               out: str | Path | None = None) -> ExportResult:
        """The dataset without the removed samples, beside the original, with a manifest; for a
        dataset shipped with tcap-viz (the demo), in the run folder, not in the installed package."""
        threshold = self.default_threshold if threshold is None else threshold
        remove = removal_reasons(self.table(threshold), rule)
        manifest = {"run": self.run_name, "model": self.model, "rule": rule, "threshold": threshold,
                    "decisions": self.log.current(self.run_name).to_dict("records")}
        return export_cleaned(self.dataset, remove, manifest, out, folder=self.export_folder())

    def export_folder(self) -> Path:
        """Where exports go: beside the dataset, or the run folder for the data shipped with tcap-viz."""
        return self.run_path if self.data.resolve().is_relative_to(DEMO_DIR.resolve()) else self.data.parent

    # -- detail, heads, map ----------------------------------------------------------------------
    @property
    def adapter(self):
        """The model, loaded on first use (the detail view needs full rows, the scan kept shares)."""
        if self._adapter is None:
            with self._lock:
                if self._adapter is None:
                    self._adapter = load_model(self.model, self.config)
        return self._adapter

    def detail(self, sample_id: str, threshold: float | None = None) -> SampleDetail:
        sample = self.dataset.by_id(sample_id)
        row = self.row(sample_id, threshold)
        if sample_id not in self._row_of:
            return SampleDetail(sample, row, None, None, pd.DataFrame(), error=f"skipped: {row['skipped']}")
        try:
            image = load_image(sample)
            attention = explain_sample(self.adapter, sample, image)
        except Exception as err:  # noqa: BLE001 - show why, keep the app alive
            return SampleDetail(sample, row, None, None, pd.DataFrame(), error=f"{type(err).__name__}: {err}")
        contributions = self.result.tcap.head_contributions(self._row_of[sample_id])
        return SampleDetail(sample, row, image, attention, contributions)

    def selected_heads(self) -> list[tuple[int, int]]:
        return [(int(l), int(h)) for l, h in self.result.tcap.profiler_.selected_heads_]

    def head_view(self, layer: int, head: int) -> HeadView:
        tcap = self.result.tcap
        profiles = self.result.extraction.profiles[:, layer, head].astype(float)  # as fit saw them
        values = head_statistic(profiles, tcap.statistic, tcap.transform)
        mixture = tcap.profiler_.head_mixture(layer, head)
        heads = self.result.heads
        info = heads[(heads["layer"] == layer) & (heads["head"] == head)].iloc[0]
        truth = None
        if self.dataset.has_ground_truth:
            truth = np.array([self.dataset.by_id(i).poisoned for i in self.result.extraction.ids], dtype=bool)
        return HeadView(layer, head, mixture.normalise(values), mixture, info, truth)

    def anatomy(self, threshold: float | None = None, on_progress: Callable[[int, int], None] | None = None,
                per_group: int = PER_GROUP, grid: int = 8) -> list[dict]:
        """The flagged samples in groups, each with its modality attribution and trigger location
        (``tcap_viz.anatomy``, ``GroupAnatomy.to_dict``). Cached in the run folder under what it was
        computed from (the scan's model and samples, the flagged set, the heads, the settings), so a
        second open is instant and a changed input is computed again. ``on_progress(done, groups)``."""
        return cached_anatomy(self.result.run, ANATOMY_FILE, self.model, self.dataset, self.config,
                              self.table(threshold), self.selected_heads(), lambda: self.adapter, per_group, grid,
                              on_progress)

    def sample_map(self, on_progress: Callable[[str], None] | None = None) -> pd.DataFrame:
        """2-D UMAP of the selected heads' profiles (cached in the run folder) joined to the table."""
        coords = sample_map(self.result.run, self.result.extraction, self.selected_heads(), on_progress)
        return coords.merge(self.table(), on="id", how="left")
