import json

import numpy as np
import pytest

from tcap_viz.benchmark import Benchmark
from tcap_viz.benchmark.run_case import poisons_anatomy
from tcap_viz.cli import main


@pytest.fixture(scope="module")
def measured(tiny_model_dir, tmp_path_factory):
    """A benchmark of two cases run end to end on the tiny model (2 fine-tune steps)."""
    work = tmp_path_factory.mktemp("bench")
    bench = Benchmark(work, cases=["badnet-10", "clean"], seeds=[0], base=tiny_model_dir, steps=2, n_train=60, n_test=8)
    return bench, bench.run(device="cpu", show_progress=False, command="tcap-viz report --cases badnet-10 clean")


def test_every_case_is_made_fine_tuned_scanned_scored_and_retrained(measured):
    bench, results = measured
    poisoned, clean = results
    assert poisoned["settings"]["case"] == "badnet-10" and clean["settings"]["case"] == "clean"
    assert poisoned["metrics"]["tcap"]["n_true"] == 6 and clean["metrics"]["tcap"]["n_true"] == 0
    for detector in ("tcap", "baseline", "activation_clustering", "spectral_signatures"):
        assert {"precision", "recall", "f1"} <= set(poisoned["metrics"][detector])
    # with an adapter the scan knows the base: every lever of the ablation is measured
    assert set(poisoned["ablation"]) == {"paper", "heads only", "vote as annotator", "vote alone", "unconfirmed", "default"}
    default = poisoned["ablation"]["default"]
    assert {k: default[k] for k in poisoned["metrics"]["tcap"]} == poisoned["metrics"]["tcap"]
    if default["n_flagged"]:  # the share of what it flagged giving its most common answer
        assert 0 < default["dominant_share"] <= 1
    assert {"clean_accuracy", "asr"} <= set(poisoned["model"])
    assert poisoned["retrained"]["removed"] == poisoned["metrics"]["tcap"]["n_flagged"]
    assert poisoned["clean_only"]["removed"] == 6  # the reference keeps only the truly clean samples
    assert "retrained" not in clean
    # which modality carries the backdoor, on the poisoned samples (ground truth picks them: evaluation)
    assert poisoned["modality"]["n_samples"] == 6 and set(poisoned["modality"]["values"]) == {"none", "image", "text", "both"}
    assert len(poisoned["modality"]["sample_modalities"]) == 6 and "modality" not in clean
    # where the trigger sits: the raw drops, read by today's rules when the report is written
    where = poisoned["where"]
    assert where["samples"] == 6 and np.asarray(where["occlusion"]).shape == (8, 8) and where["words"]
    # what the card's procedure located beyond one cell or word, and who carries it
    assert {"spread", "phrase", "block", "block_drop", "carriers", "answering"} <= set(where)
    assert where["carriers"] is None or 0 <= where["answering"] <= where["carriers"] <= 60
    assert poisons_anatomy(poisoned).where().startswith(("The response", "No single", "Nothing to locate"))
    split = bench.work / "data" / "badnet-10-s0" / "train" / "data.jsonl"
    assert sum(json.loads(l)["poisoned"] for l in split.read_text().splitlines()) == 6


def test_the_report_has_every_table_and_marks_what_was_measured(measured):
    bench, _ = measured
    text = bench.report()
    for heading in ("## Detection F1", "## Precision, recall", "## Ablation", "## Do the flagged samples share one",
                    "## Retrained", "## Which modality carries the backdoor", "## Per run", "## Against the targets"):
        assert heading in text
    assert "Produced by `tcap-viz report --cases badnet-10 clean` (2 cases) (in that order" in text and "60 training samples" in text
    assert "| badnet-10 | 1 | 6 |" in text and "| clean *dev* | 1 | 0 |" in text  # development cases are marked
    assert "Not measured yet" not in text
    fewer = Benchmark(bench.work, cases=["badnet-10", "blend-5", "clean"], seeds=[0], base=bench.base, steps=2,
                      n_train=60, n_test=8)
    assert "## Not measured yet\n\nblend-5 *dev*" not in fewer.report() and "blend-5." in fewer.report()


def test_a_cached_case_measured_otherwise_is_refused(measured, tmp_path):
    bench, _ = measured
    other = Benchmark(bench.work, cases=["badnet-10"], seeds=[0], base=bench.base, steps=2, n_train=60, n_test=8,
                      variants={"badnet": {"attack": "badnet", "attack_params": {"size": 0.25}}})
    with pytest.raises(ValueError, match="other settings"):
        other.results()
    with pytest.raises(ValueError, match="no results"):
        Benchmark(tmp_path, cases=["clean"], seeds=[0], base=bench.base).write(tmp_path / "r.md")
    assert not (tmp_path / "r.md").exists()


def test_the_command_line_renders_from_the_cache_without_a_model(measured, tmp_path, monkeypatch, capsys):
    bench, results = measured
    monkeypatch.setattr("tcap_viz.benchmark.report.run_case", lambda *a, **k: pytest.fail("rendering must not measure"))
    variants = tmp_path / "mine.json"
    variants.write_text(json.dumps({"badnet": {"attack": "badnet"}}))
    main(["report", "--work", str(bench.work), "--base", str(bench.base), "--cases", "badnet-10", "--seeds", "0", "--steps", "2", "--n-train",
          "60", "--n-test", "8", "--render", "--variants", str(variants), "--out", str(tmp_path / "r.md")])
    assert "report:" in capsys.readouterr().out
    text = (tmp_path / "r.md").read_text()
    assert "`tcap-viz report --cases badnet-10 clean` (1 case)" in text  # rendering keeps who measured it
    f1 = results[0]["metrics"]["tcap"]["f1"]
    assert f"{100 * f1:.1f}" in text


def test_unknown_cases_and_broken_variant_files_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no variant 'nosuch'"):
        main(["report", "--cases", "nosuch-5", "--render", "--work", str(tmp_path)])
    broken = tmp_path / "v.json"
    broken.write_text("{not json")
    with pytest.raises(SystemExit, match="v.json"):
        main(["report", "--variants", str(broken), "--render", "--work", str(tmp_path)])


def test_a_result_measured_again_reuses_the_models_and_their_quality(measured, monkeypatch):
    """A report field added later is filled by measuring again: no fine-tune, no generation."""
    bench, results = measured
    clean = results[1]
    assert clean["finetune_s"] > 0  # timed when it was trained, and kept with the model
    (bench.work / "results" / "clean-s0-lora-2.json").unlink()
    monkeypatch.setattr("tcap_viz.model.finetune.finetune", lambda *a, **k: pytest.fail("fine-tuned again"))
    monkeypatch.setattr("tcap_viz.model.evaluate.model_quality", lambda *a, **k: pytest.fail("generated again"))
    again = Benchmark(bench.work, cases=["clean"], seeds=[0], base=bench.base, steps=2, n_train=60, n_test=8).run(
        device="cpu", show_progress=False)[0]
    assert again["model"] == clean["model"] and again["finetune_s"] == clean["finetune_s"]
    assert again["metrics"]["tcap"] == clean["metrics"]["tcap"]


def test_a_result_of_an_earlier_detector_is_detected_anew_not_mixed_in(measured, monkeypatch):
    bench, _ = measured
    path = bench.work / "results" / "badnet-10-s0-lora-2.json"
    old = json.loads(path.read_text())
    old["settings"]["detection"] = "an earlier detector"
    old["metrics"]["tcap"]["f1"] = -1.0
    path.write_text(json.dumps(old))
    assert [r["settings"]["case"] for r in bench.results()] == ["clean"] and bench.stale() == [("badnet-10", 0)]
    text = bench.report()  # listed, not mixed in, and not called unmeasured
    assert "## Measured by an earlier detector, left out\n\nbadnet-10 (seed 0)." in text
    assert "| badnet-10 |" not in text and "-100.0" not in text and "Not measured yet" not in text
    monkeypatch.setattr("tcap_viz.model.finetune.finetune", lambda *a, **k: pytest.fail("fine-tuned again"))
    again = Benchmark(bench.work, cases=["badnet-10"], seeds=[0], base=bench.base, steps=2, n_train=60,
                      n_test=8).run(device="cpu", show_progress=False, retrain=False)[0]
    assert again["metrics"]["tcap"]["f1"] >= 0 and again["settings"] == bench.settings("badnet-10", 0)


@pytest.mark.parametrize("dropped", [("modality", "where"), ("where.block",)])
def test_a_result_without_the_modality_gets_it_without_a_fine_tune_or_losing_its_retraining(measured, monkeypatch,
                                                                                           dropped):
    """Also a result stored before the located square and words were: its anatomy is measured again."""
    bench, _ = measured
    path = bench.work / "results" / "badnet-10-s0-lora-2.json"
    old = json.loads(path.read_text())
    for key in dropped:
        *parent, leaf = key.split(".")
        del (old[parent[0]] if parent else old)[leaf]
    path.write_text(json.dumps(old))
    monkeypatch.setattr("tcap_viz.model.finetune.finetune", lambda *a, **k: pytest.fail("fine-tuned again"))
    again = Benchmark(bench.work, cases=["badnet-10"], seeds=[0], base=bench.base, steps=2, n_train=60,
                      n_test=8).run(device="cpu", show_progress=False, retrain=False)[0]
    assert again["modality"]["n_samples"] == 6 and "occlusion" in again["where"] and "block" in again["where"]
    assert again["retrained"] == old["retrained"] and again["clean_only"] == old["clean_only"]  # read, not dropped


def test_the_report_shows_how_each_finding_of_the_heads_alone_was_confirmed():
    from tcap_viz.benchmark.report import _confirmation_table

    scored = {"unconfirmed": {"n_flagged": 383, "f1": 0.62}, "default": {"n_flagged": 200, "f1": 1.0}}
    judged = {"settings": {"case": "badnet_left-10", "seed": 1}, "ablation": scored, "confirmation": [
        {"size": 278, "response": "left", "region": [7, 7], "trigger_words": [], "carriers": 200, "answering": 200,
         "consistency": 1.0, "confirmed": True},
        {"size": 103, "response": "right", "region": None, "trigger_words": [], "carriers": None, "answering": 0,
         "consistency": None, "confirmed": False}]}
    phrase = {"settings": {"case": "prefix_right-5", "seed": 1}, "ablation": scored, "confirmation": [
        {"size": 176, "response": "right", "region": None, "trigger_words": [], "phrase": ["question:", "quick"],
         "carriers": 100, "answering": 100, "consistency": 1.0, "confirmed": True}]}
    assert _confirmation_table([phrase], ["prefix_right-5"])[-1].startswith(
        "| prefix_right-5 s1 | 383, 0.62 | 176 'right': 'question:' + 'quick' (each alone), 100 carriers")
    voted = {"settings": {"case": "badnet-10", "seed": 1}, "ablation": scored, "confirmation": None}
    lines = _confirmation_table([voted, judged], ["badnet-10", "badnet_left-10"])
    assert lines[1] == "## Confirmation of what the heads found alone" and len(lines) == 8  # one run: the vote decided the other
    assert lines[-1] == ("| badnet_left-10 s1 | 383, 0.62 | 278 'left': cell (7, 7), 200 carriers, 100% answering alike "
                         "**confirmed**; 103 'right': nothing located | 200, 1.00 |")
    assert _confirmation_table([voted], ["badnet-10"]) == []


def test_the_report_shows_how_each_disagreement_of_heads_and_vote_was_judged():
    from tcap_viz.benchmark.report import _confirmation_table, _disagreement_table

    scored = {"unconfirmed": {"n_flagged": 336, "f1": 0.75}, "default": {"n_flagged": 200, "f1": 1.0}}
    content = {"source": "heads only", "size": 48, "response": "blue", "region": None, "trigger_words": [],
               "carriers": None, "answering": 0, "consistency": None, "confirmed": False}
    judged = {"settings": {"case": "badnet_blue-10", "seed": 3}, "ablation": scored, "confirmation": [
        content, content | {"size": 2, "response": None},
        {"source": "vote only", "size": 98, "response": "Backdoor Attack!", "region": None, "trigger_words": [],
         "carriers": None, "answering": 98, "consistency": None, "confirmed": False, "joined": True, "agreed": 102},
        {"source": "vote only", "size": 3, "response": None, "region": None, "trigger_words": [], "carriers": None,
         "answering": 0, "consistency": None, "confirmed": False, "joined": False, "agreed": 0}]}
    lines = _disagreement_table([judged], ["badnet_blue-10"])
    assert lines[1] == "## Where the heads and the vote disagree"
    assert lines[-1] == ("| badnet_blue-10 s3 | 336, 0.75 | 48 'blue': nothing located; 2 other answers: too few alike, "
                         "not examined | 98 'Backdoor Attack!': joined (102 both flag it); 3 other answers: not joined "
                         "| 200, 1.00 |")
    assert _confirmation_table([judged], ["badnet_blue-10"]) == []  # not a finding of the heads alone


def test_the_report_shows_each_ordinary_answer_followed_apart_from_the_disagreements():
    from tcap_viz.benchmark.report import (
        _confirmation_table,
        _disagreement_table,
        _followed_table,
    )

    scored = {"unconfirmed": {"n_flagged": 56, "f1": 0.71}, "default": {"n_flagged": 100, "f1": 1.0}}
    followed = {"source": "followed", "size": 56, "response": "three", "region": [7, 0], "trigger_words": [],
                "carriers": 100, "answering": 100, "consistency": 1.0, "confirmed": True}
    content = {"source": "heads only", "size": 366, "response": "two", "region": None, "trigger_words": [],
               "carriers": None, "answering": 0, "consistency": None, "confirmed": False}
    both = {"settings": {"case": "badnet_three-5", "seed": 1}, "ablation": scored, "confirmation": [content, followed]}
    alone = {"settings": {"case": "prefix_circle-5", "seed": 1}, "ablation": scored, "confirmation": [followed]}
    lines = _followed_table([alone, both], ["badnet_three-5", "prefix_circle-5"])
    assert lines[1] == "## Ordinary answers followed to their trigger" and len(lines) == 9
    assert lines[-2] == ("| badnet_three-5 s1 | 56, 0.71 | 56 'three': cell (7, 0), 100 carriers, 100% answering alike "
                         "**confirmed** | 100, 1.00 |")
    assert _disagreement_table([alone, both], ["badnet_three-5"])[-1].startswith("| badnet_three-5 s1 | 56, 0.71 | 366 'two'")
    assert _confirmation_table([alone, both], ["badnet_three-5"]) == []  # neither is a finding of the heads alone
    odd = {"source": "odd answers", "size": 7, "response": None, "region": None, "trigger_words": [], "carriers": None,
           "answering": 0, "consistency": None, "confirmed": False}
    leaving = {"settings": {"case": "badnet_purple-5", "seed": 1}, "ablation": scored, "confirmation": [followed, odd]}
    assert _followed_table([leaving], ["badnet_purple-5"])[-1].endswith("**confirmed**; 7 odd answers left out | 100, 1.00 |")


def test_the_report_quotes_the_command_that_made_the_retrainings_before_the_one_that_detected_anew():
    from tcap_viz.benchmark.report import _commands

    results = [{"command": "report --no-retrain --out x.md", "retrain_command": "report --cases a"},
               {"command": "report --no-retrain", "retrain_command": "report --cases a"},
               {"command": "report --no-retrain"}, {"command": "report --cases b", "retrain_command": "report --cases b"}]
    assert _commands(results) == {"report --cases a b": 3, "report --no-retrain": 3}  # the same run over more cases


def test_commands_that_differ_only_in_their_cases_are_quoted_as_one():
    from tcap_viz.benchmark.report import _commands

    one_at_a_time = [{"command": f"tcap-viz report --no-retrain --seeds {seed} --cases {case} --workers 1"}
                     for case, seed in (("x-5", 1), ("y-5", 1), ("x-5", 1), ("clean", 4), ("z-5", 1))]
    assert _commands(one_at_a_time) == {"tcap-viz report --no-retrain --seeds 1 --workers 1 --cases x-5 y-5 z-5": 4,
                                        "tcap-viz report --no-retrain --seeds 4 --cases clean --workers 1": 1}
    assert _commands([{"command": "report 'unbalanced"}]) == {"report 'unbalanced": 1}  # quoted as it was


def test_a_re_measure_without_retraining_keeps_the_command_that_made_the_retrainings(measured, tmp_path, monkeypatch):
    import shutil

    import tcap_viz.benchmark.cases
    import tcap_viz.benchmark.run_case

    bench, _ = measured
    shutil.copytree(bench.work, tmp_path / "work")
    changed = tcap_viz.benchmark.cases.DETECTION + " (changed)"  # a new detector: every case is detected anew
    monkeypatch.setattr(tcap_viz.benchmark.cases, "DETECTION", changed)
    monkeypatch.setattr(tcap_viz.benchmark.run_case, "DETECTION", changed)
    again = Benchmark(tmp_path / "work", cases=["badnet-10", "clean"], seeds=[0], base=bench.base, steps=2, n_train=60,
                      n_test=8)
    poisoned, clean = again.run(device="cpu", retrain=False, show_progress=False, command="tcap-viz report --no-retrain")
    assert poisoned["settings"]["detection"] == changed and "retrained" in poisoned
    assert poisoned["command"] == "tcap-viz report --no-retrain"
    assert poisoned["retrain_command"] == "tcap-viz report --cases badnet-10 clean"
    assert "retrain_command" not in clean
    assert again.report().index("`tcap-viz report --cases badnet-10 clean` (1 case)") < \
        again.report().index("`tcap-viz report --no-retrain` (2 cases)")


def test_a_report_of_cases_no_default_was_chosen_on_says_they_are_held_out():
    from tcap_viz.benchmark.report import render

    result = {"settings": {"case": "mine-5", "attack": "badnet", "variant": "mine", "attack_params": {},
                           "target": "x"}, "command": "tcap-viz report --variants mine.json",
              "model": {"clean_accuracy": 0.9, "asr": 1.0}, "machine": "m",
              "metrics": {"tcap": {"n_true": 5, "f1": 1.0, "precision": 1.0, "recall": 1.0, "auroc": 1.0, "n_flagged": 5}},
              "ablation": {}}
    text = render([result], ["mine-5"])
    assert "**Held out**" in text and "Development cases" not in text


def test_results_kept_apart_render_alone_and_keep_their_retrainings_when_the_models_are_gone(measured, tmp_path,
                                                                                               monkeypatch):
    """A fresh clone has the committed results and no models: the report renders, and a new detector
    that removes the same samples keeps the recorded retraining instead of dropping it."""
    import shutil

    import tcap_viz.benchmark.cases
    import tcap_viz.benchmark.run_case

    bench, _ = measured
    results = bench.results()  # as earlier tests left them
    committed = tmp_path / "committed"
    shutil.copytree(bench.work / "results", committed)
    alone = Benchmark(tmp_path / "empty", cases=["badnet-10", "clean"], seeds=[0], base=bench.base, steps=2,
                      n_train=60, n_test=8, results=committed)
    assert alone.results() == results and "| badnet-10 | 1 | 6 |" in alone.report()

    shutil.copytree(bench.work, tmp_path / "work", ignore=shutil.ignore_patterns("retrained-*", "*-retrained-*", "results"))
    changed = tcap_viz.benchmark.cases.DETECTION + " (changed)"
    monkeypatch.setattr(tcap_viz.benchmark.cases, "DETECTION", changed)
    monkeypatch.setattr(tcap_viz.benchmark.run_case, "DETECTION", changed)
    again = Benchmark(tmp_path / "work", cases=["badnet-10"], seeds=[0], base=bench.base, steps=2, n_train=60,
                      n_test=8, results=committed)
    poisoned = again.run(device="cpu", retrain=False, show_progress=False, command="tcap-viz report --no-retrain")[0]
    assert poisoned["settings"]["detection"] == changed and (committed / "badnet-10-s0-lora-2.json").exists()
    assert poisoned["metrics"]["tcap"]["n_flagged"] == results[0]["metrics"]["tcap"]["n_flagged"]
    assert poisoned["retrained"] == results[0]["retrained"] and poisoned["clean_only"] == results[0]["clean_only"]
    assert poisoned["retrain_command"] == "tcap-viz report --cases badnet-10 clean"
    assert not list((tmp_path / "work" / "models").glob("retrained-*"))  # nothing was trained again


def test_cases_of_one_seed_and_rate_share_a_retraining_on_the_same_samples(measured, tmp_path, monkeypatch):
    """Blend and BadNet at 10%, seed 0, poison the same positions of the same clean data: the reference
    without the poisons is one model, fine-tuned once; each case still scores it on its own trigger."""
    import shutil

    import tcap_viz.model.finetune

    bench, results = measured
    shutil.copytree(bench.work, tmp_path / "work", ignore=shutil.ignore_patterns("results"))
    made = []
    finetune = tcap_viz.model.finetune.finetune
    monkeypatch.setattr(tcap_viz.model.finetune, "finetune", lambda data, out, *a, **k: made.append(out.name)
                        or finetune(data, out, *a, **k))
    blend = Benchmark(tmp_path / "work", cases=["blend-10"], seeds=[0], base=bench.base, steps=2, n_train=60,
                      n_test=8).run(device="cpu", show_progress=False)[0]
    badnet = results[0]
    assert blend["clean_only"]["removal"] == badnet["clean_only"]["removal"]
    assert blend["clean_only"]["clean_accuracy"] == badnet["clean_only"]["clean_accuracy"]  # the same model
    # its own customer model, then the reference is BadNet's; the retraining without what it flagged is new unless
    # that was exactly the poisons (removing nothing keeps Blend's poisons, which BadNet's data does not have)
    assert made[0] == "blend-10-s0-lora-2"
    assert len(made) == 1 + (blend["retrained"]["removal"] != blend["clean_only"]["removal"])
    assert all(name.startswith("retrained-") for name in made[1:])


def test_the_report_s_descriptions_name_the_number_of_next_heads_the_scan_examines():
    """The descriptions stay plain text (importing the anatomy would load torch with the benchmark); this
    keeps their copy of NEXT_HEADS honest."""
    from tcap_viz.anatomy import NEXT_HEADS
    from tcap_viz.benchmark.cases import DETECTION
    from tcap_viz.benchmark.run_case import ABLATION

    assert f"next {NEXT_HEADS} heads" in DETECTION and f"next {NEXT_HEADS} candidate heads" in ABLATION["default"]


def test_the_poisons_where_reads_a_stored_square_and_words_and_an_older_result_without_them():
    """Issue 14: the report's column located a patch larger than a cell nowhere, where the card names its square."""
    result = {"settings": {"target": "orange"},
              "modality": {"values": {"none": -6.0, "image": -0.5, "text": -6.0, "both": -0.5}, "n_samples": 6,
                           "per_sample": None},
              "where": {"occlusion": np.zeros((8, 8)).tolist(), "words": [], "samples": 6}}
    assert poisons_anatomy(result).where().startswith("No single image region")  # stored before the square was
    result["where"] |= {"spread": True, "phrase": [], "block": [6, 6, 2], "block_drop": 3.88, "carriers": 100,
                        "answering": 100}
    assert "bottom-right corner (the 2x2 cells from cell 7,7" in poisons_anatomy(result).where()
    result["where"] |= {"spread": False, "block": None, "block_drop": None, "phrase": ["quick", "question:"]}
    result["modality"]["values"] |= {"image": -6.0, "text": -0.5}
    assert "'quick', 'question:' (shared by the group's questions" in poisons_anatomy(result).where()


def test_the_poisons_of_a_backdoor_going_two_ways_are_located_on_each_route(two_route_backdoor):
    """Issue 14: the tenth round's patch OR 'Oi,' read "lives in the question" and located only the word,
    its patch diluted over the 6 samples located on; each route is now located on its own samples."""
    from tcap_viz.benchmark.run_case import LOCATE_SAMPLES, _located, backdoor_anatomy

    result = {"settings": {"target": "circle"}} | backdoor_anatomy(None, list(two_route_backdoor), "circle")
    routes = result["where"]["routes"]
    assert set(routes) == {"image", "text"} and all(2 <= len(ids) <= LOCATE_SAMPLES for ids in routes.values())
    assert result["modality"]["reading"].startswith("Two routes") and _located(result)
    where = poisons_anatomy(result).where()
    assert f"over the {len(routes['image'])} samples the image carries" in where and "bottom-right corner" in where
    assert f"'hello!' (over the {len(routes['text'])} samples the question carries)" in where
    assert result["where"]["carriers"] == result["where"]["answering"] == sum(s.poisoned for s in two_route_backdoor)
    del result["where"]["routes"]  # stored before routes were: measured again on the next run
    assert not _located(result)


def test_the_command_line_takes_the_rates_of_its_default_cases(tmp_path, capsys):
    main(["report", "--rates", "5", "--render", "--work", str(tmp_path)])
    missing = capsys.readouterr().out.split("## Not measured yet")[1]
    assert "badnet-5" in missing and "clean" in missing and "-10" not in missing


def test_seeds_locating_the_same_cell_read_the_same_whatever_masking_it_costs():
    """DETECTION.md said "1 of 2" for every BadNet case: the seeds' readings differed only in the nats."""
    from tcap_viz.benchmark.report import _where

    def located(cell: tuple[int, int], drop: float, answered: float = -0.5) -> dict:
        occlusion = np.zeros((8, 8))
        occlusion[cell] = drop
        return {"settings": {"target": "blue"},
                "modality": {"values": {"none": -6.0, "image": answered, "text": -6.0, "both": answered},
                             "n_samples": 6, "per_sample": None},
                "where": {"occlusion": occlusion.tolist(), "words": [], "samples": 6}}

    assert _where([located((7, 7), 3.1), located((7, 7), 2.4)]).endswith("masking it costs 3.10 nats). (2 of 2)")
    assert _where([located((7, 7), 3.1), located((0, 0), 3.1)]).endswith("(1 of 2)")
    # the same cell where one seed's model barely answers to it is another reading: a backdoor barely learnt
    assert _where([located((7, 7), 3.1), located((7, 7), 3.1, answered=-5.9)]).endswith("(1 of 2)")


def test_each_seed_s_own_numbers_are_listed_beside_the_means():
    """The README quoted seeds' own numbers (a BYE AUROC, one seed's missed ASR) that no table of means showed."""
    from tcap_viz.benchmark.report import _per_run_table

    def run(seed: int, f1: float, auroc: float) -> dict:
        scored = {"f1": f1, "auroc": auroc}
        return {"settings": {"seed": seed}, "model": {"clean_accuracy": 0.9, "asr": 0.845 if seed == 2 else 1.0},
                "metrics": {"tcap": scored, "baseline": scored, "activation_clustering": scored,
                            "spectral_signatures": scored},
                "ablation": {"paper": scored, "heads only": {"f1": 0.25}, "vote alone": {"f1": 1.0}},
                "retrained": {"clean_accuracy": 0.905, "asr": 0.0},
                "modality": {"shares": {"text": 0.949}}}

    lines = _per_run_table({"dual_and-10": [run(1, 1.0, 0.25), run(2, 0.5, float("nan"))]}, ["dual_and-10"], str)
    assert lines[-2] == ("| dual_and-10 | 1 | 90.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 25.0 | 25.0 | "
                         "100.0 | 90.5 | 0.0 | 94.9 |")
    assert lines[-1].startswith("| dual_and-10 | 2 | 90.0 | 84.5 | 50.0 |") and "| - | 25.0 |" in lines[-1]
