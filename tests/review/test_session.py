"""The review session: live threshold, server-side filtering, decisions, detail and export."""

import json

import numpy as np
import pytest

from tcap_viz.review.session import ReviewSession, SampleQuery


def test_threshold_reflags_live_and_counts_follow(session):
    posterior = session.table()["posterior"]
    for threshold in (0.0, 0.5, 0.99):
        table = session.table(threshold)
        assert table["flagged"].sum() == (posterior > threshold).sum()
        assert session.counts(threshold)["flagged"] == (posterior > threshold).sum()
        assert session.counts(threshold)["pending"] == (posterior > threshold).sum()


def test_query_filters_sorts_and_pages_on_the_server(session):
    table = session.table(0.0)
    page, total = session.query(SampleQuery(page_size=7, sort_by="posterior", descending=True), 0.0)
    assert total == len(table) and len(page) == 7
    assert page["posterior"].is_monotonic_decreasing
    second, _ = session.query(SampleQuery(page_size=7, page=1), 0.0)
    assert set(second["id"]).isdisjoint(page["id"])
    word = table["question"].iloc[0].split()[0]
    matched, n = session.query(SampleQuery(text=word.upper(), page_size=1000), 0.0)
    searched = table[["id", "question", "response"]].apply(
        lambda column: column.str.contains(word, case=False, regex=False))
    assert n == searched.any(axis=1).sum() and len(matched) == n
    assert matched["question"].str.contains(word, case=False).sum() >= 1
    ids = frozenset(table["id"].iloc[:3])
    assert set(session.query(SampleQuery(ids=ids), 0.0)[0]["id"]) == ids
    flagged, n_flagged = session.query(SampleQuery(flag="flagged", page_size=1000), 0.0)
    assert flagged["flagged"].all() and n_flagged == table["flagged"].sum()
    with pytest.raises(ValueError, match="sort_by"):
        session.query(SampleQuery(sort_by="question"))


def test_decisions_undo_and_a_restart_lose_nothing(session, tiny_model_dir, tiny_data_path, scanned_run):
    a, b = session.table()["id"].iloc[:2]
    session.decide(a, "poison", "ana", "patch in the corner")
    session.decide(b, "clean", "ana")
    session.decide(b, "unsure", "bo")
    assert session.undo("ana") == b  # ana's latest standing decision
    reopened = ReviewSession(tiny_model_dir, tiny_data_path, scanned_run, decisions=session.log.path).open()
    table = reopened.table().set_index("id")
    assert table.loc[a, "decision"] == "poison" and table.loc[b, "decision"] == "unsure"
    assert table.loc[b, "reviewer"] == "bo"
    filtered, n = reopened.query(SampleQuery(decision="poison"))
    assert list(filtered["id"]) == [a] and n == 1
    with pytest.raises(KeyError):
        session.decide("no-such-id", "poison", "ana")


def test_queue_is_the_flagged_samples_most_suspicious_first(session):
    queue = session.queue(0.0)
    assert len(queue) > 0 and queue["flagged"].all() and queue["posterior"].is_monotonic_decreasing
    first = queue["id"].iloc[0]
    session.decide(first, "clean", "ana")
    assert first not in set(session.queue(0.0, pending_only=True)["id"])


def test_detail_shows_the_attention_and_why(session):
    sample_id = session.table()["id"].iloc[0]
    detail = session.detail(sample_id)
    assert detail.error == "" and detail.image is not None
    np.testing.assert_allclose(detail.attention.rows.sum(-1), 1.0, atol=1e-5)
    assert len(detail.contributions) == len(session.selected_heads())
    with pytest.raises(KeyError):
        session.detail("no-such-id")


def test_head_view_holds_the_fitted_mixture(session):
    heads = session.result.heads
    layer, head = heads.sort_values("separation").iloc[-1][["layer", "head"]].astype(int)
    view = session.head_view(layer, head)
    assert len(view.values) == len(session.result.extraction.ids)
    assert view.values.min() == pytest.approx(0) and view.values.max() == pytest.approx(1)
    assert view.mixture.weights.sum() == pytest.approx(1)
    assert view.truth is not None and view.truth.dtype == bool


def test_export_removes_confirmed_poisons_and_records_who_decided(session, tmp_path):
    a = session.table()["id"].iloc[0]
    session.decide(a, "poison", "ana")
    result = session.export("confirmed", out=tmp_path / "clean.jsonl")
    assert result.removed == 1
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["rule"] == "confirmed" and manifest["removed"] == [{"id": a, "reason": "confirmed poison"}]
    assert manifest["decisions"][0]["reviewer"] == "ana"


def test_common_responses_count_the_flagged_answers(session):
    table = session.table(0.0)
    common = session.common_responses(0.0, top=3)
    flagged = table[table["flagged"]]
    assert len(common) == min(3, flagged["response"].nunique())
    top = common.iloc[0]
    assert top["flagged"] == (flagged["response"] == top["response"]).sum()
    assert top["in the dataset"] == (table["response"] == top["response"]).sum()
    assert top["share of flagged"] == round(top["flagged"] / len(flagged), 3)


def test_row_is_the_tables_line_and_the_table_follows_new_decisions(session):
    sample_id = session.table()["id"].iloc[5]
    before = session.table(0.3)
    assert session.row(sample_id, 0.3).equals(before.set_index("id", drop=False).loc[sample_id])
    session.decide(sample_id, "unsure", "ana")
    after = session.table(0.3)  # same threshold, but the log grew: not the kept table
    assert after.set_index("id").loc[sample_id, "decision"] == "unsure"
    assert len(after) == len(before)  # every sample, not only the newly decided one
    assert session.counts(0.3)["samples"] == len(before)
    assert session.row(sample_id, 0.3)["decision"] == "unsure"
    before.loc[:, "decision"] = "tampered"  # a caller's copy never leaks back
    assert "tampered" not in set(session.table(0.3)["decision"])


def test_the_table_follows_decisions_written_elsewhere(session):
    """Another app process writes to the same log; this session's tables see it, undos included."""
    from tcap_viz.storage.decisions import DecisionLog

    a, b = session.table()["id"].iloc[:2]
    session.decide(a, "poison", "ana")
    assert session.table().set_index("id").loc[a, "decision"] == "poison"
    other = DecisionLog(session.log.path)
    other.record(session.run_name, b, "unsure", "bo")
    other.undo(session.run_name, "ana")
    table = session.table().set_index("id")
    assert len(table) == len(session.result.samples)
    assert table.loc[a, "decision"] == "pending" and table.loc[a, "reviewer"] == ""
    assert table.loc[b, "decision"] == "unsure" and session.row(b)["reviewer"] == "bo"


def test_the_demo_exports_into_its_run_folder_not_into_the_checkout(tmp_path, tiny_data_path):
    """The demo's dataset lies in the checkout (or the installed package): never write there."""
    from tcap_viz.data import load_dataset, load_image
    from tcap_viz.demo import DEMO_DATA, DEMO_MODEL
    from tcap_viz.storage.export import export_cleaned

    assert ReviewSession(DEMO_MODEL, DEMO_DATA, tmp_path / "run").export_folder() == tmp_path / "run"
    assert ReviewSession(DEMO_MODEL, tiny_data_path, tmp_path / "run").export_folder() == tiny_data_path.parent
    demo = load_dataset(DEMO_DATA)
    before = sorted(p.name for p in DEMO_DATA.parent.iterdir())
    result = export_cleaned(demo, {demo[0].id: "confirmed poison"}, {}, folder=tmp_path / "run")
    assert result.data_path.parent == tmp_path / "run" and result.manifest_path.exists()
    assert sorted(p.name for p in DEMO_DATA.parent.iterdir()) == before
    cleaned = load_dataset(result.data_path)  # the demo's own images are read from there, no flag needed
    assert len(cleaned) == len(demo) - 1 and load_image(cleaned[0]).size == load_image(demo[1]).size


def test_sorting_by_the_base_models_plausibility_needs_a_scan_that_knows_the_base(session):
    with pytest.raises(ValueError, match="--base-model"):
        session.query(SampleQuery(sort_by="base_logprob"))


def test_the_dominant_response_tells_a_target_answer_from_a_content_group(session):
    table = session.table(0.0)
    answer, share, outside = session.dominant_response(0.0)
    flagged = table.loc[table["flagged"], "response"].str.strip().str.casefold()
    assert share == (flagged == answer).mean() == flagged.value_counts(normalize=True).iloc[0]
    assert outside == (table.loc[~table["flagged"], "response"].str.strip().str.casefold() == answer).sum()
    assert session.dominant_response(1.0) is None  # nothing flagged


def test_a_group_is_decided_in_one_action_and_undone_as_one(session):
    groups = session.groups()
    assert groups and sum(g.size for g in groups) == int(session.table()["flagged"].sum())
    first = groups[0]
    decided = session.decide_group(first.name, "poison", "ana", note="one trigger")
    assert decided == first.ids
    table = session.table().set_index("id")
    assert (table.loc[first.ids, "decision"] == "poison").all()
    history = session.log.history(session.run_name)
    assert history["batch"].str.startswith(f"{first.name} ").sum() == first.size  # each sample its own event
    assert sorted(session.undo_decisions("ana")) == sorted(first.ids)
    assert (session.table().set_index("id").loc[first.ids, "decision"] == "pending").all()
    with pytest.raises(KeyError, match="no group 'g99'"):
        session.decide_group("g99", "poison", "ana")
