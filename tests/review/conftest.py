import pytest

from tcap_viz.pipeline import scan


@pytest.fixture(scope="session")
def scanned_run(tiny_model_dir, tiny_data_path, tmp_path_factory):
    """A run folder whose profiles are cached, so each test's session opens it in a moment."""
    run = tmp_path_factory.mktemp("review") / "run"
    scan(tiny_model_dir, tiny_data_path, run, show_progress=False)
    return run


@pytest.fixture()
def session(tiny_model_dir, tiny_data_path, scanned_run, tmp_path):
    from tcap_viz.pipeline import ScanConfig
    from tcap_viz.review.session import ReviewSession

    # the tiny random model separates a group in a single head; min_heads=1 lets that head vote,
    # so the review paths (queue, votes, why) have flags to work on
    config = ScanConfig(tcap={"min_heads": 1})
    return ReviewSession(tiny_model_dir, tiny_data_path, scanned_run, config,
                         decisions=tmp_path / "decisions.sqlite").open()
