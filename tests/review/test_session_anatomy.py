import pytest

import tcap_viz.anatomy as anatomy_module
from tcap_viz.cli import main
from tcap_viz.demo import DEMO_MODEL
from tcap_viz.review.session import ANATOMY_FILE, ReviewSession


def test_a_session_opens_from_its_run_folder_alone(demo_scan, tmp_path):
    session = ReviewSession.from_run(demo_scan.run.path)
    assert session.model == str(DEMO_MODEL) and session.data == demo_scan.dataset.path
    assert session.table()["flagged"].sum() == demo_scan.samples["flagged"].sum()
    with pytest.raises(ValueError, match="config.json not found: give a run folder"):
        ReviewSession.from_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a run's config"):
        ReviewSession.from_run(tmp_path)


def test_the_demo_backdoor_is_one_group_in_the_image_corner_and_cached(demo_scan, monkeypatch):
    session = ReviewSession.from_run(demo_scan.run.path)
    groups = session.anatomy(per_group=3, grid=4)
    first = groups[0]
    assert first["response"] == "Backdoor Attack!" and first["size"] >= 190 and len(first["examined"]) == 3
    assert first["modality"]["shares"]["image"] > 0.9 and "lives in the image" in first["modality"]["reading"]
    assert first["region"] == [3, 3] and "bottom-right corner" in first["where"]
    assert (demo_scan.run.path / ANATOMY_FILE).exists()

    monkeypatch.setattr(anatomy_module, "anatomy", lambda *a, **k: pytest.fail("served again, not from the cache"))
    assert ReviewSession.from_run(demo_scan.run.path).anatomy(per_group=3, grid=4) == groups

    computed = []
    monkeypatch.setattr(anatomy_module, "anatomy", lambda *a, **k: computed.append(k) or [])
    assert session.anatomy(threshold=1.0, per_group=3, grid=4) == [] and computed  # another flagged set
    (demo_scan.run.path / ANATOMY_FILE).write_text('{"key": ')  # cut short: computed again, not an error
    session.anatomy(per_group=3, grid=4)
    assert len(computed) == 2


def test_the_anatomy_command_prints_each_group(demo_scan, capsys, tmp_path):
    main(["anatomy", str(demo_scan.run.path), "--per-group", "2", "--grid", "2", "--json", str(tmp_path / "a.json")])
    out = capsys.readouterr().out
    assert "g1: " in out and "'Backdoor Attack!'" in out and "lives in the image" in out
    assert "  who else: " in out  # who else carries what the group's answer hangs on, flagged or not
    assert (tmp_path / "a.json").read_text().startswith("[")
