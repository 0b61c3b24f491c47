"""The CLI end to end on a new dataset: make-data -> finetune -> eval-model -> scan -> evaluate."""

import pytest

from tcap_viz.cli import main


def test_make_data_finetune_scan_evaluate(tmp_path, capsys):
    main(["make-data", "--out", str(tmp_path / "data"), "--attack", "blend", "--n", "40", "--n-test", "8",
          "--poison-rate", "0.2", "--image-size", "32"])
    train = tmp_path / "data" / "train" / "data.jsonl"
    assert train.exists() and (tmp_path / "data" / "test_triggered" / "data.jsonl").exists()

    main(["finetune", "--data", str(train), "--out", str(tmp_path / "model"), "--steps", "2"])
    saved = {p.name for p in (tmp_path / "model").iterdir()}
    assert "model.safetensors" in saved and "config.json" in saved
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in saved)  # never pickle

    main(["eval-model", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data" / "test_clean" / "data.jsonl")])
    main(["scan", "--model", str(tmp_path / "model"), "--data", str(train), "--out", str(tmp_path / "run"),
          "--tcap", '{"top_heads": 4}'])
    main(["evaluate", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "scanned 40, skipped 0" in out
    for detector in ("TCAP", "BYE", "Act. Clustering", "Spectral Sig."):  # the scan's and evaluate's tables
        assert out.count(f"\n{detector} ") == 2, detector


def test_lora_from_the_shipped_base_then_every_command_takes_the_adapter(tmp_path, tiny_data_path, capsys):
    from tcap_viz.demo import BASE_MODEL

    main(["finetune", "--data", str(tiny_data_path), "--out", str(tmp_path / "lora"), "--lora", "--steps", "2"])
    assert f"--model {BASE_MODEL} --adapter {tmp_path / 'lora'}" in capsys.readouterr().out
    assert (tmp_path / "lora" / "adapter_model.safetensors").exists()
    common = ["--model", str(BASE_MODEL), "--adapter", str(tmp_path / "lora")]
    main(["eval-model", *common, "--data", str(tiny_data_path), "--limit", "4"])
    main(["scan", *common, "--data", str(tiny_data_path), "--out", str(tmp_path / "run")])
    assert "scanned 40, skipped 0" in capsys.readouterr().out


def test_from_scratch_takes_no_base(tmp_path, tiny_data_path):
    with pytest.raises(SystemExit, match="neither --base nor --lora"):
        main(["finetune", "--data", str(tiny_data_path), "--out", str(tmp_path / "m"), "--from-scratch", "--lora"])
    main(["finetune", "--data", str(tiny_data_path), "--out", str(tmp_path / "m"), "--from-scratch", "--steps", "1"])
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_finetune_refuses_to_overwrite(tmp_path, tiny_data_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(SystemExit, match="already exists"):
        main(["finetune", "--data", str(tiny_data_path), "--out", str(tmp_path / "model"), "--steps", "1"])


def test_bad_dataset_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1, "image": "a.png", "conversations": [{"from": "human", "value": 3}]}]')
    with pytest.raises(SystemExit, match=r"bad\.json"):
        main(["scan", "--model", str(tmp_path), "--data", str(bad), "--out", str(tmp_path / "run")])


def test_the_app_refuses_a_broken_dataset_before_serving(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(SystemExit, match="nowhere.jsonl: file not found"):
        main(["app", "--data", str(missing)])
    with pytest.raises(SystemExit, match="auth"):
        main(["app", "--auth", "no-colon-here"])


def test_scan_in_shards_then_merge(tmp_path, tiny_model_dir, tiny_data_path, capsys, monkeypatch):
    from tcap_viz import pipeline

    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 16)  # 40 samples: 3 chunks over 2 shards
    common = ["scan", "--model", str(tiny_model_dir), "--data", str(tiny_data_path), "--out", str(tmp_path / "run")]
    for shard in ("0/2", "1/2"):
        main([*common, "--shard", shard])
    assert len(list((tmp_path / "run").glob("chunks/*/chunk-*.npz"))) == 3
    main(common)
    assert "scanned 40, skipped 0" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="i/n"):
        main([*common, "--shard", "2/2"])


def test_evaluate_on_a_folder_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder; give the run folder"):
        main(["evaluate", str(tmp_path / "no-such-run")])


def test_make_data_help_describes_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["make-data", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--attack", "--poison-rate", "--n ", "--n-test", "--target", "--seed", "--image-size",
                   "--attack-params", "--poison-question-type", "--format"):
        assert option in text
    assert "(default: 0.1)" in text and "(default: badnet)" in text and "share of the training samples" in text


def test_scan_says_what_the_confirmation_decided_and_no_confirm_skips_it(tmp_path, tiny_model_dir, tiny_data_path,
                                                                        capsys, monkeypatch):
    import tcap_viz.anatomy
    from tests.test_pipeline import _Card

    monkeypatch.setattr(tcap_viz.anatomy, "anatomy",
                        lambda adapter, dataset, table, heads, **k: [_Card(list(table.loc[table["flagged"], "id"]))])
    common = ["scan", "--model", str(tiny_model_dir), "--data", str(tiny_data_path), "--out", str(tmp_path / "run"),
              "--tcap", '{"min_heads": 1}']  # the tiny random model's one head flags a group
    main(common)
    out = capsys.readouterr().out
    assert "flagged 0" in out and "Confirmation. No plausibility vote was used" in out and "Nothing is flagged" in out
    main([*common, "--no-confirm"])
    out = capsys.readouterr().out
    assert "Confirmation." not in out and "flagged 0" not in out
