"""The app through its public API (gradio_client): open, detail, decide, undo, export, restart."""

import shutil

import pytest
from gradio_client import Client

from tcap_viz.review.session import ReviewSession
from tests.ui.serving import free_port
from tcap_viz.ui.app import build_app, parse_auth
from tcap_viz.ui.request_guards import request_guards


@pytest.fixture()
def data_copy(tiny_data_path, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(tiny_data_path.parent, folder)
    return folder / tiny_data_path.name


def _serve(model, data, run, auth=None, session=None):
    app = build_app(session or ReviewSession(model, data, run)).queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, auth=auth,
               app_kwargs={"middleware": request_guards("127.0.0.1")})
    return app, Client(app.local_url, verbose=False, auth=auth[0] if auth else None)


def test_review_round_trip_survives_a_restart(tiny_model_dir, data_copy, tmp_path):
    run = tmp_path / "run"
    app, client = _serve(tiny_model_dir, data_copy, run)
    try:
        opened = client.predict(api_name="/open_run")
        assert "40 samples" in opened[1] and "flagged" in opened[1]
        assert (run / "profiles.npz").exists()
        text, image, tokens, *_ = client.predict("00001", "mean of the selected heads", 0.0, api_name="/sample_detail")
        assert "Sample `00001`" in text and image and "tcap-part" in tokens
        assert "poison" in client.predict("00001", "ana", "corner patch", 0.0, api_name="/decide_poison")[0]
        client.predict("00002", "ana", "", 0.0, api_name="/decide_clean")
        assert "00002" in client.predict("ana", 0.0, api_name="/undo")[0]
        message, path = client.predict("confirmed", 0.0, api_name="/export")
        assert "1 removed" in message and path.startswith(str(data_copy.parent))
    finally:
        app.close()
    app, client = _serve(tiny_model_dir, data_copy, run)  # a restart: same run folder, same decision log
    try:
        client.predict(api_name="/open_run")
        text = client.predict("00001", "mean of the selected heads", 0.0, api_name="/sample_detail")[0]
        assert "decision** poison by ana" in text
        text = client.predict("00002", "mean of the selected heads", 0.0, api_name="/sample_detail")[0]
        assert "decision** pending" in text
    finally:
        app.close()


def test_a_decision_needs_a_reviewer(tiny_model_dir, data_copy, tmp_path):
    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run")
    try:
        client.predict(api_name="/open_run")
        with pytest.raises(Exception, match="reviewer"):
            client.predict("00001", "", "", 0.5, api_name="/decide_poison")
    finally:
        app.close()


def test_the_login_name_is_the_reviewer(tiny_model_dir, data_copy, tmp_path):
    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run", auth=[("ana", "secret")])
    try:
        client.predict(api_name="/open_run")
        client.predict("00003", "someone else", "", 0.5, api_name="/decide_unsure")
        text = client.predict("00003", "mean of the selected heads", 0.5, api_name="/sample_detail")[0]
        assert "decision** unsure by ana" in text
    finally:
        app.close()


def test_auth_accepts_a_pair_or_a_file(tmp_path):
    assert parse_auth("ana:secret") == [("ana", "secret")]
    users = tmp_path / "users.txt"
    users.write_text("# reviewers\nana:one\n\nbo:two:with-colon\n")
    assert parse_auth(str(users)) == [("ana", "one"), ("bo", "two:with-colon")]
    users.write_text("ana\n")
    with pytest.raises(ValueError, match="line 1"):
        parse_auth(str(users))
    assert parse_auth(None) is None


def test_the_api_works_after_a_restart_before_any_page_load(tiny_model_dir, data_copy, tmp_path):
    run = tmp_path / "run"
    app, client = _serve(tiny_model_dir, data_copy, run)
    try:
        client.predict(api_name="/open_run")
        client.predict("00001", "ana", "", 0.5, api_name="/decide_poison")
        client.predict("00002", "ana", "", 0.5, api_name="/decide_poison")
    finally:
        app.close()
    app, client = _serve(tiny_model_dir, data_copy, run)  # no /open_run: a script, not a browser
    try:
        assert "00002" in client.predict("ana", 0.5, api_name="/undo")[0]
        assert "00003" in client.predict("00003", "bo", "", 0.5, api_name="/decide_clean")[0]
    finally:
        app.close()
    events = ReviewSession(tiny_model_dir, data_copy, run).log.history(str(run.resolve()))
    assert events["decision"].tolist() == ["poison", "poison", "undo", "clean"]  # one undo, not a retry's two


def test_requests_for_another_host_or_from_another_origin_are_refused(tiny_model_dir, data_copy, tmp_path):
    """DNS rebinding (Host: evil.example) and a cross-site post reach nothing; the app's own names work."""
    import httpx

    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run")
    try:
        url = app.local_url.rstrip("/")
        port = url.rsplit(":", 1)[1]
        assert httpx.get(url + "/config").status_code == 200
        assert httpx.get(url + "/config", headers={"Host": f"localhost:{port}"}).status_code == 200
        rebound = httpx.get(url + "/config", headers={"Host": f"evil.example:{port}"})
        assert rebound.status_code == 403 and "--host" in rebound.text
        posted = httpx.post(url + "/gradio_api/queue/join", json={}, headers={"Origin": "http://evil.example"})
        assert posted.status_code == 403
        client.predict("00001", "ana", "", 0.5, api_name="/decide_poison")  # the API client still works
    finally:
        app.close()
    events = ReviewSession(tiny_model_dir, data_copy, tmp_path / "run").log.history(str((tmp_path / "run").resolve()))
    assert events["sample_id"].tolist() == ["00001"]


def test_allowed_hosts_follow_the_serving_address():
    from tcap_viz.ui.request_guards import allowed_hosts

    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert "review.lab.example" in allowed_hosts("review.lab.example")
    assert allowed_hosts("0.0.0.0") is None  # every interface: any name (use --auth there)


def test_logins_are_throttled(tiny_model_dir, data_copy, tmp_path):
    import httpx

    from tcap_viz.ui.request_guards import LOGIN_ATTEMPTS

    app, _ = _serve(tiny_model_dir, data_copy, tmp_path / "run", auth=[("ana", "secret")])
    try:
        url = app.local_url.rstrip("/") + "/login"
        codes = [httpx.post(url, data={"username": "ana", "password": f"guess{i}"}).status_code
                 for i in range(LOGIN_ATTEMPTS + 2)]
        # the API client logged in once already: one attempt of the window is spent
        assert 429 not in codes[:LOGIN_ATTEMPTS - 1] and codes[LOGIN_ATTEMPTS - 1:] == [429] * 3
        refused = httpx.post(url, data={"username": "ana", "password": "secret"})
        assert refused.status_code == 429 and "Retry-After" in refused.headers  # even the right one, for now
    finally:
        app.close()


def test_the_app_keeps_its_files_in_a_folder_of_its_own(tiny_model_dir, data_copy, tmp_path):
    import os
    import tempfile
    from pathlib import Path

    import httpx

    shared = Path(tempfile.gettempdir()) / "gradio"
    shared.mkdir(exist_ok=True)
    other_apps_file = shared / "another-apps-secret.txt"
    other_apps_file.write_text("not yours")
    app, _ = _serve(tiny_model_dir, data_copy, tmp_path / "run")
    try:
        own = Path(app.GRADIO_CACHE)
        assert own != shared and not own.is_relative_to(shared) and (own.stat().st_mode & 0o077) == 0
        served = httpx.get(app.local_url.rstrip("/") + f"/gradio_api/file={other_apps_file}")
        assert served.status_code in (403, 404) and "not yours" not in served.text
    finally:
        app.close()
        other_apps_file.unlink()
        assert os.environ["GRADIO_TEMP_DIR"] == str(own)


def test_a_failed_export_says_why_and_that_nothing_was_written(tiny_model_dir, data_copy, tmp_path):
    session = ReviewSession(tiny_model_dir, data_copy, tmp_path / "run")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    session.export = full_disk
    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run", session=session)
    try:
        with pytest.raises(Exception, match="export failed and wrote nothing.*No space left"):
            client.predict("confirmed", 0.5, api_name="/export")
    finally:
        app.close()


def test_a_run_that_cannot_be_scanned_says_why_in_the_page(tiny_model_dir, data_copy, tmp_path):
    for image in (data_copy.parent / "images").iterdir():
        image.unlink()
    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run")
    try:
        with pytest.raises(Exception, match="none of its 40 samples could be read"):
            client.predict(api_name="/open_run")
    finally:
        app.close()


def test_the_anatomy_describes_each_group_and_decides_a_group_in_one_action(tiny_model_dir, data_copy, tmp_path):
    from tcap_viz.pipeline import ScanConfig

    # the tiny random model separates a group in a single head; min_heads=1 lets it flag, unconfirmed (tests/conftest.py)
    session = ReviewSession(tiny_model_dir, data_copy, tmp_path / "run", ScanConfig(tcap={"min_heads": 1}, confirm=False))
    app, client = _serve(tiny_model_dir, data_copy, tmp_path / "run", session=session)
    try:
        client.predict(api_name="/open_run")
        group, text, image, examples, _plot, words = client.predict(0.5, api_name="/anatomy")
        first = session.groups(0.5)[0]  # here one flagged sample, its answer too rare to be a group of its own
        assert group["value"] == first.name and f"### {first.name}: {first.size} sample" in text
        assert "**Modality.**" in text and "**Where.**" in text and image and len(examples) == first.size
        assert list(words["headers"]) == ["word", "drop", "clean_drop", "samples"]
        message = client.predict(first.name, "ana", "", 0.5, api_name="/decide_group_poison")[0]
        assert f"group {first.name}: {first.size} samples marked **poison** by ana" in message
        assert set(session.table(0.5).set_index("id").loc[first.ids, "decision"]) == {"poison"}
        assert first.ids[0] in client.predict("ana", 0.5, api_name="/undo")[0]
        assert set(session.table(0.5).set_index("id").loc[first.ids, "decision"]) == {"pending"}
        assert "Nothing is flagged" in client.predict(1.0, api_name="/anatomy")[1]
    finally:
        app.close()
