"""The app starts on a model and dataset and loads the run through its public endpoint."""

import gradio as gr
from gradio_client import Client

from tcap_viz.ui.app import build_app


def test_app_opens_a_run_through_its_api(tiny_model_dir, tiny_data_path, tmp_path):
    app = build_app(str(tiny_model_dir), tiny_data_path, tmp_path / "run")
    assert isinstance(app, gr.Blocks)
    app.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        summary, samples, heads = Client(app.local_url, verbose=False).predict(api_name="/open_run")
        assert "40 samples" in summary and "flagged" in summary
        assert len(samples["data"]) == 40
        assert (tmp_path / "run" / "profiles.npz").exists()
    finally:
        app.close()
