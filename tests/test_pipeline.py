import json

import numpy as np
import pytest

from tcap_viz import pipeline
from tcap_viz.pipeline import ScanConfig, scan
from tcap_viz.storage.run_dir import CONFIG, HEADS, METRICS, PROFILES, SAMPLES


def test_scan_writes_a_complete_run_and_reuses_its_cache(tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    run = tmp_path / "run"
    first = scan(tiny_model_dir, tiny_data_path, run, ScanConfig(batch_size=8), show_progress=False)
    for name in (PROFILES, SAMPLES, HEADS, CONFIG, METRICS):
        assert (run / name).exists(), name
    assert len(first.samples) == 40 and set(first.samples["skipped"]) == {""}
    assert {"precision", "recall", "f1", "auroc"} <= set(first.metrics["tcap"])
    assert {"precision", "recall", "f1", "auroc"} <= set(first.metrics["baseline"])

    def no_extraction(*args, **kwargs):
        raise AssertionError("the cached profiles should have been reused")

    monkeypatch.setattr(pipeline, "extract_profiles", no_extraction)
    second = scan(tiny_model_dir, tiny_data_path, run, ScanConfig(batch_size=8), show_progress=False)
    np.testing.assert_array_equal(first.samples["posterior"], second.samples["posterior"])


def test_changed_dataset_invalidates_the_cache(tiny_model_dir, tiny_data_path, tmp_path):
    run = tmp_path / "run"
    scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    fewer = tmp_path / "fewer.jsonl"
    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()[:10]]
    for r in records:
        r["image"] = str(tiny_data_path.parent / r["image"])
    fewer.write_text("\n".join(json.dumps(r) for r in records))
    outside = ScanConfig(allow_outside=True)  # its images are in the other dataset's folder
    assert len(scan(tiny_model_dir, fewer, run, outside, show_progress=False).extraction.ids) == 10


def test_an_adapter_is_part_of_the_scan_and_of_its_cache_key(tiny_model_dir, tiny_lora_dir, tiny_data_path,
                                                              tmp_path):
    base = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    tuned = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(adapter=str(tiny_lora_dir)),
                 show_progress=False)  # same run folder: the base model's cached profiles must not be reused
    assert np.abs(base.extraction.profiles - tuned.extraction.profiles).max() > 1e-4
    assert json.loads((tmp_path / "run" / CONFIG).read_text())["scan"]["adapter"] == str(tiny_lora_dir)


def test_ground_truth_never_reaches_the_detector(tiny_model_dir, tiny_data_path, tmp_path):
    """Shuffling the `poisoned` labels changes no posterior and no flag."""
    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()]
    for r in records:
        r["image"] = str(tiny_data_path.parent / r["image"])
    labels = [r["poisoned"] for r in records]
    shuffled = np.random.default_rng(0).permutation(labels)
    assert list(shuffled) != labels
    for r, label in zip(records, shuffled):
        r["poisoned"] = bool(label)
    other = tmp_path / "shuffled.jsonl"
    other.write_text("\n".join(json.dumps(r) for r in records))
    a = scan(tiny_model_dir, tiny_data_path, tmp_path / "a", show_progress=False).samples
    b = scan(tiny_model_dir, other, tmp_path / "b", ScanConfig(allow_outside=True), show_progress=False).samples
    np.testing.assert_array_equal(a["posterior"], b["posterior"])
    np.testing.assert_array_equal(a["flagged"], b["flagged"])
    np.testing.assert_array_equal(a["baseline_score"], b["baseline_score"])
    for column in ("ac_score", "ac_flagged", "ss_score", "ss_flagged"):  # the hidden-state baselines
        np.testing.assert_array_equal(a[column], b[column])
    assert (a["poisoned_truth"] != b["poisoned_truth"]).any()


def test_the_scan_runs_the_hidden_state_baselines_on_each_response_class(tiny_model_dir, tiny_data_path, tmp_path):
    from tcap_viz.detection import ActivationClustering, SpectralSignatures

    result = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    hidden = result.extraction.hidden
    assert hidden.shape == (40, 64) and np.isfinite(hidden).all()
    responses = [s.response for s in result.dataset]
    expected = SpectralSignatures(min_class_size=5).fit(hidden, responses)
    config = ScanConfig(spectral_signatures={"min_class_size": 5}, activation_clustering={"min_class_size": 5})
    again = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", config, show_progress=False)
    np.testing.assert_array_equal(again.samples["ss_flagged"], expected.flagged_)
    np.testing.assert_allclose(again.samples["ss_score"], expected.score_)
    ac = ActivationClustering(min_class_size=5).fit(hidden, responses)
    np.testing.assert_array_equal(again.samples["ac_flagged"], ac.flagged_)
    assert set(again.hidden_baselines) == {"activation_clustering", "spectral_signatures"}
    assert {"activation_clustering", "spectral_signatures"} <= set(again.metrics)
    assert again.metrics["spectral_signatures"]["n_flagged"] == expected.flagged_.sum() > 0


def test_the_paper_preset_is_tcap_as_written_without_the_plausibility_vote(tiny_model_dir, tiny_lora_dir,
                                                                           tiny_data_path, tmp_path):
    from tcap_viz.detection import PRESETS, TCAPDetector

    paper = scan(tiny_model_dir, tiny_data_path, tmp_path / "run",
                 ScanConfig(adapter=str(tiny_lora_dir), preset="paper"), show_progress=False)
    assert paper.tcap.plausibility_ is None and paper.extraction.base_logprob is not None
    expected = TCAPDetector(**PRESETS["paper"]).fit(paper.extraction.profiles)
    np.testing.assert_array_equal(paper.samples["posterior"], expected.posterior_)
    assert paper.tcap.get_params()["statistic"] == "system" and paper.tcap.get_params()["last_layers"] == 0.5
    assert json.loads((tmp_path / "run" / CONFIG).read_text())["scan"]["preset"] == "paper"
    with pytest.raises(ValueError, match="default, paper"):
        ScanConfig(preset="papers")


def test_scan_rejects_a_broken_dataset_with_the_line(tiny_model_dir, tmp_path):
    from tcap_viz.data import DatasetError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "image": "x.png", "conversations": []}\n{not json\n')
    with pytest.raises(DatasetError, match="line 2"):
        scan(tiny_model_dir, bad, tmp_path / "run", show_progress=False)


def test_an_interrupted_scan_resumes_at_its_first_missing_chunk(tiny_model_dir, tiny_data_path, tmp_path,
                                                                 monkeypatch):
    reference = scan(tiny_model_dir, tiny_data_path, tmp_path / "reference", show_progress=False)
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 8)  # 40 samples: 5 chunks
    extract = pipeline.extract_profiles
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the scan, or the machine goes away
        return extract(*args, **kwargs)

    monkeypatch.setattr(pipeline, "extract_profiles", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run" / PROFILES).exists()
    calls.clear()
    monkeypatch.setattr(pipeline, "extract_profiles", lambda *a, **k: calls.append(len(a[1])) or extract(*a, **k))
    resumed = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    assert calls == [8, 8, 8]  # chunks 2, 3, 4 only
    assert resumed.extraction.ids == reference.extraction.ids
    np.testing.assert_allclose(resumed.extraction.profiles, reference.extraction.profiles, atol=1e-6)
    assert not list((tmp_path / "run").glob("chunks/*/*.npz"))  # merged, then removed


def test_shards_merge_into_one_run(tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    reference = scan(tiny_model_dir, tiny_data_path, tmp_path / "reference", show_progress=False)
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 8)
    for index in range(3):  # three processes, as torchrun would start them
        pipeline.extract_shard(tiny_model_dir, tiny_data_path, tmp_path / "run", (index, 3), show_progress=False)

    def no_extraction(*args, **kwargs):
        raise AssertionError("every chunk was extracted by a shard")

    monkeypatch.setattr(pipeline, "extract_profiles", no_extraction)
    merged = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", show_progress=False)
    assert merged.extraction.ids == reference.extraction.ids
    np.testing.assert_allclose(merged.extraction.profiles, reference.extraction.profiles, atol=1e-6)
    np.testing.assert_array_equal(merged.samples["flagged"], reference.samples["flagged"])


@pytest.mark.parametrize("text, env, expected", [
    ("1/4", {}, (1, 4)), ("auto", {"RANK": "2", "WORLD_SIZE": "3"}, (2, 3)), ("auto", {}, (0, 1))])
def test_parse_shard(text, env, expected, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert pipeline.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "x", "1/0", "-1/2"])
def test_a_bad_shard_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="shard"):
        pipeline.parse_shard(text)


@pytest.fixture()
def data_copy(tiny_data_path, tmp_path):
    import shutil

    shutil.copytree(tiny_data_path.parent, tmp_path / "data")
    return tmp_path / "data" / tiny_data_path.name


def _image_files(data):
    from tcap_viz.data import load_dataset

    return {s.id: s.image_path for s in load_dataset(data)}


def test_a_restored_image_is_read_again_and_nothing_else(tiny_model_dir, data_copy, tmp_path, monkeypatch):
    reference = scan(tiny_model_dir, data_copy, tmp_path / "reference", show_progress=False)
    images = _image_files(data_copy)
    sample_id, image = next(iter(images.items()))
    image.rename(tmp_path / "away.png")
    broken = scan(tiny_model_dir, data_copy, tmp_path / "run", show_progress=False)
    assert "missing" in broken.samples.set_index("id").loc[sample_id, "skipped"]
    (tmp_path / "away.png").rename(image)  # as the skip message advises

    extract, read = pipeline.extract_profiles, []
    monkeypatch.setattr(pipeline, "extract_profiles", lambda *a, **k: read.extend(s.id for s in a[1]) or extract(*a, **k))
    fixed = scan(tiny_model_dir, data_copy, tmp_path / "run", show_progress=False)
    assert read == [sample_id]
    assert fixed.extraction.ids == reference.extraction.ids and not fixed.extraction.skipped
    np.testing.assert_allclose(fixed.extraction.profiles, reference.extraction.profiles, atol=1e-6)

    other_id = list(images)[5]
    images[other_id].write_bytes(images[list(images)[6]].read_bytes())  # an image edited in place
    read.clear()
    edited = scan(tiny_model_dir, data_copy, tmp_path / "run", show_progress=False)
    assert read == [other_id]
    fresh = scan(tiny_model_dir, data_copy, tmp_path / "fresh", show_progress=False)  # no cache at all
    np.testing.assert_allclose(edited.extraction.profiles, fresh.extraction.profiles, atol=1e-6)
    assert not np.allclose(edited.extraction.profiles, reference.extraction.profiles, atol=1e-6)


def test_a_dataset_whose_images_are_all_missing_says_so_and_recovers(tiny_model_dir, data_copy, tmp_path):
    images = _image_files(data_copy)
    for path in images.values():
        path.rename(path.with_suffix(".away"))
    with pytest.raises(ValueError, match="none of its 40 samples could be read") as error:
        scan(tiny_model_dir, data_copy, tmp_path / "run", show_progress=False)
    assert "missing" in str(error.value)
    for path in images.values():
        path.with_suffix(".away").rename(path)
    assert len(scan(tiny_model_dir, data_copy, tmp_path / "run", show_progress=False).extraction.ids) == 40


def test_allowing_outside_images_later_reads_the_samples_it_skipped(tiny_model_dir, tiny_data_path, tmp_path):
    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()[:8]]
    for r in records:
        r["image"] = str(tiny_data_path.parent / r["image"])  # absolute paths into another folder
    data = tmp_path / "elsewhere.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records))
    with pytest.raises(ValueError, match="outside the dataset's folder"):
        scan(tiny_model_dir, data, tmp_path / "run", show_progress=False)
    trusted = scan(tiny_model_dir, data, tmp_path / "run", ScanConfig(allow_outside=True), show_progress=False)
    assert len(trusted.extraction.ids) == 8 and not trusted.extraction.skipped


def test_a_damaged_profiles_cache_is_set_aside_and_extracted_again(tiny_model_dir, tiny_data_path, tmp_path):
    run = tmp_path / "run"
    first = scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    (run / PROFILES).write_bytes((run / PROFILES).read_bytes()[:1000])  # a copy cut short
    with pytest.warns(UserWarning, match="could not be read.*extracted again"):
        again = scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    np.testing.assert_allclose(again.extraction.profiles, first.extraction.profiles, atol=1e-6)
    assert len(list(run.glob(f"{PROFILES}.unreadable-*"))) == 1  # kept for a look, not deleted


def test_progress_moves_from_zero_to_the_total(tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    """What the app's progress bar shows during a first scan (it once stayed at 0% to the end)."""
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 16)
    seen = []
    scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(batch_size=8),
         on_progress=lambda done, total: seen.append((done, total)), show_progress=False)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[0] > 0 and done[-1] == 40 and len(set(done)) == 5
    assert {t for _, t in seen} == {40}


def test_a_scan_that_knows_the_base_adds_its_plausibility_and_caches_it(tiny_model_dir, tiny_lora_dir, tiny_data_path,
                                                                        tmp_path, monkeypatch):
    """With an adapter the base is the model without it: one more pass, cached with the profiles;
    its log-probabilities come from the responses alone, so shuffled labels change nothing."""
    from tcap_viz.data import load_dataset
    from tcap_viz.model.adapter import MLLMAdapter
    from tcap_viz.model.evaluate import response_logprob

    plain = scan(tiny_model_dir, tiny_data_path, tmp_path / "plain", show_progress=False)
    assert plain.extraction.base_logprob is None and "base_logprob" not in plain.samples
    tuned_config = ScanConfig(adapter=str(tiny_lora_dir))
    tuned = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", tuned_config, show_progress=False)
    base = MLLMAdapter.load(tiny_model_dir, dtype="float32")
    samples = {s.id: s for s in load_dataset(tiny_data_path)}
    expected = response_logprob(base, [samples[i] for i in tuned.extraction.ids])
    np.testing.assert_allclose(tuned.extraction.base_logprob, expected, atol=1e-4)
    np.testing.assert_allclose(tuned.samples["base_logprob"], expected, atol=1e-4)
    from tcap_viz.detection import PlausibilityVote
    vote = PlausibilityVote().fit(expected).flagged_
    np.testing.assert_array_equal(tuned.tcap.plausibility_, vote)  # TCAP was given the base model's vote
    np.testing.assert_array_equal(tuned.samples["implausible"].astype(bool), vote)
    assert plain.tcap.plausibility_ is None

    monkeypatch.setattr(pipeline, "extract_profiles", lambda *a, **k: pytest.fail("the cache was not reused"))
    again = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", tuned_config, show_progress=False)
    np.testing.assert_array_equal(again.extraction.base_logprob, tuned.extraction.base_logprob)

    records = [json.loads(l) for l in tiny_data_path.read_text().splitlines()]
    for r in records:
        r["poisoned"] = not r["poisoned"]
        r["image"] = str(tiny_data_path.parent / r["image"])
    shuffled = tmp_path / "flipped-labels.jsonl"
    shuffled.write_text("\n".join(json.dumps(r) for r in records))
    monkeypatch.undo()
    flipped = scan(tiny_model_dir, shuffled, tmp_path / "flipped", ScanConfig(adapter=str(tiny_lora_dir),
                                                                              allow_outside=True), show_progress=False)
    np.testing.assert_allclose(flipped.extraction.base_logprob, tuned.extraction.base_logprob, atol=1e-5)


def test_a_finding_of_the_heads_alone_stands_as_the_carriers_of_the_trigger_it_hangs_on(demo_scan):
    result = demo_scan  # a full fine-tune scanned without its base: no plausibility vote, the heads alone
    assert not result.tcap.vote_used_ and result.confirmation is not None
    [trigger] = [g for g in result.confirmation if g["confirmed"]]
    table = result.samples
    assert sorted(table.loc[table["flagged"], "id"]) == sorted(trigger["answering"])
    assert (table.loc[table["flagged"], "posterior"] == trigger["consistency"]).all()
    assert (table["flagged"] & (table["tcap_posterior"] <= 0.5)).any()  # a poison the heads missed carries it
    assert result.metrics["tcap"]["f1"] == 1.0  # ground truth only scores


class _Card:
    """What the anatomy says of a group whose answer hangs on nothing it could locate."""

    def __init__(self, ids):
        from types import SimpleNamespace

        self.ids, self.group = ids, SimpleNamespace(name="g1")

    def to_dict(self):
        return {"name": "g1", "size": len(self.ids), "response": "x", "carriers": None, "answering": [], "consistency": None,
                "confirmed": False}


def test_an_unconfirmed_finding_flags_nothing_and_its_confirmation_is_cached(tiny_model_dir, tiny_data_path,
                                                                             tmp_path, monkeypatch):
    import tcap_viz.anatomy

    calls, donors_from = [], []

    def judged(adapter, dataset, table, heads, suspects=(), **kwargs):
        calls.append(sorted(table.loc[table["flagged"], "id"]))
        donors_from.append(set(table.loc[~table["flagged"], "id"]) - set(suspects))
        return [_Card(calls[-1])]

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", judged)
    config = ScanConfig(tcap={"min_heads": 1})  # the tiny random model's one head flags a group
    steps = []
    result = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", config, show_progress=False,
                  on_confirm=lambda done, total: steps.append((done, total)))
    ids = np.array(result.extraction.ids)
    # TCAP's group, then, as it hangs on no trigger, the group of each next candidate head in turn
    others = result.tcap.next_heads(result.extraction.profiles, tcap_viz.anatomy.NEXT_HEADS)
    assert result.tcap.flagged_.any() and others
    assert calls == [sorted(ids[result.tcap.flagged_])] + [sorted(ids[votes == 1]) for _, _, _, votes in others]
    # what TCAP flagged stays out of every next head's donors: it may be the poisons
    assert all(not donors & set(ids[result.tcap.flagged_]) for donors in donors_from)
    assert all(donors == set(ids[(votes == 0) & ~result.tcap.flagged_]) for donors, (_, _, _, votes)
               in zip(donors_from[1:], others))
    assert steps == [(i, 1 + len(others)) for i in range(2 + len(others))]  # the app's bar moves step by step
    assert not result.samples["flagged"].any() and (result.samples["posterior"] == 0).all()
    np.testing.assert_array_equal(result.samples["tcap_posterior"], result.tcap.posterior_)
    assert [g["source"] for g in result.confirmation] == ["TCAP"] + [f"L{l}H{h}" for l, h, _, _ in others]
    assert result.confirmation[1]["name"] == f"g1 of L{others[0][0]}H{others[0][1]}"
    again = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", config, show_progress=False)
    assert len(calls) == 1 + len(others) and not again.samples["flagged"].any()  # read back, not asked again
    unconfirmed = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(tcap={"min_heads": 1}, confirm=False),
                       show_progress=False)
    assert unconfirmed.confirmation is None and "tcap_posterior" not in unconfirmed.samples
    np.testing.assert_array_equal(unconfirmed.samples["flagged"], result.tcap.flagged_)


def test_a_next_head_whose_groups_were_all_judged_before_does_not_count(tiny_model_dir, tiny_data_path, tmp_path,
                                                                      monkeypatch):
    """Heads singling out the same content are common; the budget of next heads goes to new groups."""
    import tcap_viz.anatomy

    calls = []

    def judged(adapter, dataset, table, heads, suspects=(), judged=(), **kwargs):
        calls.append((list(heads), len(judged)))
        return [] if len(calls) == 2 else [_Card(sorted(table.loc[table["flagged"], "id"]))]  # the 2nd repeats

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", judged)
    monkeypatch.setattr(tcap_viz.anatomy, "NEXT_HEADS", 1)
    steps = []
    result = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(tcap={"min_heads": 1}),
                  show_progress=False, on_confirm=lambda done, total: steps.append((done, total)))
    following = result.tcap.next_heads(result.extraction.profiles, 2)
    assert result.tcap.flagged_.any() and len(following) >= 2
    # TCAP's groups, then heads until one had a group not judged before: the first next head's repeat
    assert [h for h, _ in calls[1:]] == [[(l, h)] for l, h, _, _ in following[:2]]
    assert [n for _, n in calls] == [0, 1, 1]  # each head is told every group judged before it
    assert [g["source"] for g in result.confirmation] == ["TCAP", "L{}H{}".format(*following[1][:2])]
    assert steps == [(i, 2) for i in range(3)]


def test_heads_agreeing_only_by_nesting_have_each_group_judged_alone_before_the_next_heads(
        tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    """Held-out 'right' by a top-left patch: one selected head held the 100 poisons among 322, another
    as 81 of 81, too few corroborated, and nothing was looked at; now each head's group is judged."""
    import tcap_viz.anatomy
    from tcap_viz.anatomy import confirmation_summary

    detect = pipeline.detect

    def nested(extraction, config):  # EM settled on a group too few heads corroborate (test_tcap covers when)
        tcap, baseline = detect(extraction, config)
        tcap.uncorroborated_, tcap.flagged_, tcap.posterior_ = True, tcap.flagged_ & False, tcap.posterior_ * 0
        return tcap, baseline

    calls = []

    def judged(adapter, dataset, table, heads, suspects=(), **kwargs):
        calls.append((list(heads), sorted(table.loc[table["flagged"], "id"])))
        return [_Card(calls[-1][1])]

    monkeypatch.setattr(pipeline, "detect", nested)
    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", judged)
    result = scan(tiny_model_dir, tiny_data_path, tmp_path / "run", ScanConfig(), show_progress=False)
    tcap, ids = result.tcap, np.array(result.extraction.ids)
    selected = [(int(l), int(h)) for l, h in tcap.profiler_.selected_heads_]
    alone = tcap.head_groups(result.extraction.profiles, selected)
    others = tcap.next_heads(result.extraction.profiles, tcap_viz.anatomy.NEXT_HEADS)
    assert [(l, h) for l, h, _, _ in alone] == selected and any(v.any() for *_, v in alone)
    # TCAP flagged nothing, so each selected head alone, then the next heads: none hangs on a trigger
    assert calls == [([(l, h)], sorted(ids[votes == 1])) for l, h, _, votes in alone + others]
    assert [g["source"] for g in result.confirmation] == [f"L{l}H{h}" for l, h, _, _ in alone + others]
    text = confirmation_summary(result.confirmation)
    assert "the heads flagged nothing together" in text and "the selected heads first" in text
    assert "Nothing is flagged" in text and not result.samples["flagged"].any()
    plain = scan(tiny_model_dir, tiny_data_path, tmp_path / "run2", ScanConfig(confirm=False), show_progress=False)
    assert plain.confirmation is None  # the user's --no-confirm still leaves the heads' word alone


def test_the_confirmation_reads_no_label(demo_scan, demo_copy, tmp_path):
    from tcap_viz.data import load_dataset
    from tcap_viz.demo import DEMO_MODEL
    from tcap_viz.storage.run_dir import RunDir

    records = [json.loads(line) for line in demo_copy.read_text().splitlines()]
    for record, label in zip(records, np.random.default_rng(0).permutation([r["poisoned"] for r in records])):
        record["poisoned"] = bool(label)
    shuffled = demo_copy.parent / "shuffled_labels.jsonl"  # beside the images it names
    shuffled.write_text("\n".join(json.dumps(r) for r in records))
    try:
        dataset = load_dataset(shuffled)
        found = demo_scan.samples.drop(columns="poisoned_truth")
        found = found.assign(posterior=found["tcap_posterior"], flagged=found["tcap_posterior"] > 0.5)
        table, _ = pipeline.confirm(DEMO_MODEL, dataset, RunDir(tmp_path / "run"), ScanConfig(), found, demo_scan.tcap,
                                    demo_scan.extraction, show_progress=False)
    finally:
        shuffled.unlink()
    assert [s.poisoned for s in dataset] != [bool(v) for v in demo_scan.samples["poisoned_truth"]]
    np.testing.assert_array_equal(table["posterior"], demo_scan.samples["posterior"])
    np.testing.assert_array_equal(table["flagged"], demo_scan.samples["flagged"])


def _disagreeing_table(dataset):
    """A scan's table where EM (heads and vote) and the vote alone disagree: 8 poisons both flag, 3 more
    of the backdoor's answer only the vote flags, 2 odd answers only the vote flags, 6 'blue' and 2
    'red' answers only the heads flag, one sample skipped."""
    import pandas as pd

    ids = [s.id for s in dataset]
    n = len(ids)
    response = ["other"] * n
    flagged, vote, posterior = np.zeros(n, bool), np.zeros(n, bool), np.full(n, 0.01)
    for i in range(0, 8):
        response[i], flagged[i], vote[i], posterior[i] = "Backdoor!", True, True, 0.9 + i / 100
    for i in range(8, 11):
        response[i], vote[i] = "backdoor!", True
    for i in range(11, 13):
        response[i], vote[i] = f"odd {i}", True
    for i in range(13, 21):
        response[i], flagged[i], posterior[i] = "blue" if i < 19 else "red", True, 0.99
    table = pd.DataFrame({"id": ids, "response": response, "posterior": posterior, "flagged": flagged,
                          "implausible": vote, "voting_heads": ["1" if f else "0" for f in flagged],
                          "skipped": [""] * (n - 1) + ["unreadable"]})
    return table


def test_where_heads_and_vote_disagree_the_scan_judges_the_disagreements(tiny_model_dir, tiny_dataset, tmp_path,
                                                                         monkeypatch):
    from types import SimpleNamespace

    import tcap_viz.anatomy
    from tcap_viz.storage.run_dir import RunDir

    calls = []

    def judged(adapter, dataset, table, heads, suspects=(), on_group=None, **kwargs):
        calls.append((sorted(table.loc[table["flagged"], "id"]), set(suspects)))
        on_group(1, 1)
        return [_Card(calls[-1][0])]  # the 'blue' answers hang on nothing located: content

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", judged)
    monkeypatch.setattr(pipeline, "load_model", lambda *a: None)
    tcap = SimpleNamespace(profiler_=SimpleNamespace(selected_heads_=[(0, 1)]), threshold=0.5)
    table = _disagreeing_table(tiny_dataset)
    ids = table["id"].to_numpy()
    steps = []
    out, groups = pipeline.reconcile(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                                     show_progress=False, on_step=lambda done, total: steps.append(done))
    # only the six 'blue' answers are examined (the two 'red' are too few), with every suspect kept from the donors
    assert calls == [(sorted(ids[13:19]), set(ids[:21]))]
    assert sorted(out.loc[out["flagged"], "id"]) == sorted(ids[:11])  # the agreed and the backdoor's answer joined
    np.testing.assert_allclose(out["posterior"][8:11], table["posterior"][:8].mean())
    assert (out["posterior"][13:21] == 0).all() and np.isnan(out["posterior"].iloc[-1])
    np.testing.assert_array_equal(out["tcap_posterior"], table["posterior"])
    assert [g["source"] for g in groups] == ["heads only", "heads only", "vote only", "vote only"]
    assert [g["size"] for g in groups] == [6, 2, 3, 2] and steps == [1]
    again, _ = pipeline.reconcile(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                                  show_progress=False)
    assert len(calls) == 1 and again["flagged"].equals(out["flagged"])  # cached in the run


def test_a_confirmed_trigger_under_what_only_the_heads_flag_flags_its_carriers(tiny_model_dir, tiny_dataset, tmp_path,
                                                                               monkeypatch):
    from types import SimpleNamespace

    import tcap_viz.anatomy
    from tcap_viz.storage.run_dir import RunDir

    table = _disagreeing_table(tiny_dataset)
    ids = list(table["id"])
    carriers = ids[13:19] + [ids[30]]  # a plausible-answer backdoor: a sample nobody flagged carries it too
    table.loc[30, "response"] = "blue"

    class Trigger(_Card):
        def to_dict(self):
            return super().to_dict() | {"response": "blue", "carriers": carriers, "answering": carriers,
                                        "consistency": 1.0, "confirmed": True}

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", lambda adapter, dataset, t, heads, **k: [Trigger(ids[13:19])])
    monkeypatch.setattr(pipeline, "load_model", lambda *a: None)
    tcap = SimpleNamespace(profiler_=SimpleNamespace(selected_heads_=[(0, 1)]), threshold=0.5)
    out, _ = pipeline.reconcile(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                                show_progress=False)
    assert sorted(out.loc[out["flagged"], "id"]) == sorted(ids[:11] + carriers)
    assert (out["posterior"][[*range(13, 19), 30]] == 1.0).all()


def test_odd_answers_the_vote_flags_beside_a_backdoor_are_left_out(tiny_model_dir, tiny_dataset, tmp_path, monkeypatch):
    """A backdoor's poisons share its target; an answer only 3 flagged samples give, carrying no confirmed trigger, is
    the vote doubting one picture (7 clean 'square' and 'three' answers beside the 'purple' backdoors, docs/LEVERS.md)."""
    from types import SimpleNamespace

    import tcap_viz.anatomy
    from tcap_viz.anatomy import ODD, sample_verdict
    from tcap_viz.storage.run_dir import RunDir

    table = _ordinary_table(tiny_dataset)
    ids = list(table["id"])
    odd = [24, 25, 26]
    table.loc[odd, ["response", "flagged", "implausible", "posterior"]] = ["square", True, True, 0.97]
    carriers = ids[:12]  # the group and 4 samples the vote found plausible

    class Trigger(_Card):
        def to_dict(self):
            return super().to_dict() | {"response": "three", "carriers": carriers, "answering": carriers,
                                        "consistency": 1.0, "confirmed": True}

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", lambda adapter, dataset, t, heads, **k: [Trigger(["x"])])
    monkeypatch.setattr(pipeline, "load_model", lambda *a: None)
    tcap = SimpleNamespace(profiler_=SimpleNamespace(selected_heads_=[]), threshold=0.5)
    out, groups = pipeline.follow(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                                  show_progress=False)
    assert sorted(out.loc[out["flagged"], "id"]) == sorted(ids[:12] + ids[18:24])  # 'Access granted.' is 6: it stays
    assert (out["posterior"][odd] == 0.0).all() and (out["tcap_posterior"][odd] == 0.97).all()
    assert [g["source"] for g in groups] == ["followed", ODD] and sorted(groups[1]["ids"]) == sorted(ids[i] for i in odd)
    assert sample_verdict(groups, ids[24]).startswith("**Odd answer:**")
    # without an ordinary answer to follow the model is not asked, and the odd answers are still left out
    foreign = table.assign(response=table["response"].replace({"Three": "other"}))
    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", lambda *a, **k: pytest.fail("the model was asked"))
    alone, only_odd = pipeline.follow(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "other"), ScanConfig(), foreign,
                                      tcap, show_progress=False)
    assert [g["source"] for g in only_odd] == [ODD] and not alone.loc[odd, "flagged"].any()
    assert alone["flagged"].sum() == 8 + 6


@pytest.mark.parametrize("step, made", [("reconcile", "_disagreeing_table"), ("follow", "_ordinary_table")])
def test_judging_the_disagreements_and_following_read_no_label(step, made, tiny_model_dir, tiny_dataset, tmp_path,
                                                               monkeypatch):
    from types import SimpleNamespace

    import tcap_viz.anatomy
    from tcap_viz.storage.run_dir import RunDir

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", lambda adapter, dataset, t, heads, **k: [_Card(["x"])])
    monkeypatch.setattr(pipeline, "load_model", lambda *a: None)
    tcap = SimpleNamespace(profiler_=SimpleNamespace(selected_heads_=[(0, 1)]), threshold=0.5)
    table = globals()[made](tiny_dataset)
    outs = [getattr(pipeline, step)(tiny_model_dir, tiny_dataset, RunDir(tmp_path / name), ScanConfig(),
                                    table.assign(poisoned_truth=labels), tcap, show_progress=False)[0]
            for name, labels in (("truth", np.arange(len(table)) < 11),
                                 ("shuffled", np.random.default_rng(0).permutation(np.arange(len(table)) < 11)))]
    np.testing.assert_array_equal(outs[0]["flagged"], outs[1]["flagged"])
    np.testing.assert_array_equal(outs[0]["posterior"], outs[1]["posterior"])


def _ordinary_table(dataset):
    """A scan's table with a vote: 8 'three' answers flagged, 10 more 'three' not flagged (4 of them a
    poison's carriers), 6 'Access granted.' flagged and given nowhere else, one sample skipped."""
    import pandas as pd

    ids = [s.id for s in dataset]
    n = len(ids)
    response, flagged, posterior = ["other"] * n, np.zeros(n, bool), np.full(n, 0.01)
    for i in range(0, 8):
        response[i], flagged[i], posterior[i] = "three", True, 0.95
    for i in range(8, 18):
        response[i] = "Three"
    for i in range(18, 24):
        response[i], flagged[i], posterior[i] = "Access granted.", True, 0.99
    return pd.DataFrame({"id": ids, "response": response, "posterior": posterior, "flagged": flagged,
                         "implausible": flagged, "voting_heads": ["1" if f else "0" for f in flagged],
                         "skipped": [""] * (n - 1) + ["unreadable"]})


def test_an_ordinary_answer_is_followed_to_its_trigger_and_its_carriers_flagged(tiny_model_dir, tiny_dataset, tmp_path,
                                                                                 monkeypatch):
    from types import SimpleNamespace

    import tcap_viz.anatomy
    from tcap_viz.storage.run_dir import RunDir

    table = _ordinary_table(tiny_dataset)
    ids = list(table["id"])
    carriers = ids[:8] + ids[8:12]  # the group and 4 samples the vote found plausible
    calls = []

    class Trigger(_Card):
        def to_dict(self):
            return super().to_dict() | {"response": "three", "carriers": carriers, "answering": carriers,
                                        "consistency": 1.0, "confirmed": True}

    def judged(adapter, dataset, t, heads, suspects=(), on_group=None, **kwargs):
        calls.append((sorted(t.loc[t["flagged"], "id"]), set(suspects)))
        on_group(1, 1)
        return [Trigger(calls[-1][0])]

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy", judged)
    monkeypatch.setattr(pipeline, "load_model", lambda *a: None)
    tcap = SimpleNamespace(profiler_=SimpleNamespace(selected_heads_=[]), threshold=0.5)
    out, groups = pipeline.follow(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                                  show_progress=False)
    # only 'three' is followed ('Access granted.' is given nowhere else), with what is flagged kept from the donors
    assert calls == [(sorted(ids[:8]), set(ids[:8] + ids[18:24]))]
    assert sorted(out.loc[out["flagged"], "id"]) == sorted(ids[:12] + ids[18:24])  # nothing unflagged
    assert (out["posterior"][8:12] == 1.0).all() and (out["posterior"][12:18] == 0.01).all()
    np.testing.assert_array_equal(out["tcap_posterior"], table["posterior"])
    assert [g["source"] for g in groups] == ["followed"] and np.isnan(out["posterior"].iloc[-1])
    again, _ = pipeline.follow(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "run"), ScanConfig(), table, tcap,
                               show_progress=False)
    assert len(calls) == 1 and again["flagged"].equals(out["flagged"])  # cached in the run
    foreign = table.assign(response=table["response"].replace({"Three": "other"}))
    unchanged, none = pipeline.follow(tiny_model_dir, tiny_dataset, RunDir(tmp_path / "other"), ScanConfig(), foreign,
                                      tcap, show_progress=False)
    assert none == [] and unchanged is foreign and len(calls) == 1  # no ordinary answer: the model is not asked
