"""The analyst app. For now one page: the scan's summary, its most suspicious samples and its heads.

The scan runs in the page's load event with a progress bar; a second open reads the cached run.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no calls home

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, default_run_dir
from tcap_viz.pipeline import ScanConfig, ScanResult, scan

SAMPLE_COLUMNS = ["id", "posterior", "flagged", "votes", "question", "response", "skipped"]


def summary_markdown(result: ScanResult, model, data) -> str:
    table = result.samples
    skipped = int((table["skipped"] != "").sum())
    flagged = int(table["flagged"].fillna(False).astype(bool).sum())
    heads = ", ".join(f"L{l}H{h}" for l, h in result.tcap.profiler_.selected_heads_) or "none"
    lines = [f"**Model** `{model}`  \n**Dataset** `{data}` ({len(table)} samples)  \n**Run** `{result.run.path}`",
             f"Scanned {len(table) - skipped}, skipped {skipped}, **flagged {flagged}** (posterior > "
             f"{result.tcap.threshold}). Selected heads: {heads}."]
    if result.metrics:
        m, b = result.metrics["tcap"], result.metrics["baseline"]
        lines.append("Against ground-truth labels the detector never saw: "
                     f"TCAP precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}; "
                     f"BYE baseline F1 {b['f1']:.3f}.")
    return "\n\n".join(lines)


def build_app(model, data, run, device=None) -> gr.Blocks:
    def open_run(progress=gr.Progress()):
        progress(0, desc="loading the run (scanning if it is not cached)")
        result = scan(model, data, run, ScanConfig(device=device), show_progress=False,
                      on_progress=lambda done, total: progress(done / total, desc="extracting attention"))
        samples = result.samples.sort_values("posterior", ascending=False)[SAMPLE_COLUMNS].head(100)
        heads = result.heads.sort_values("separation", ascending=False)
        return summary_markdown(result, model, data), samples, heads

    with gr.Blocks(title="tcap-viz") as app:
        gr.Markdown("# tcap-viz: backdoor-poison scan (TCAP)")
        summary = gr.Markdown("Loading the run…")
        with gr.Tab("Most suspicious samples"):
            samples = gr.Dataframe(pd.DataFrame(columns=SAMPLE_COLUMNS), interactive=False)
        with gr.Tab("Heads"):
            heads = gr.Dataframe(interactive=False)
        app.load(open_run, outputs=[summary, samples, heads], api_name="open_run")
    return app


def launch(model=None, data=None, run=None, host="127.0.0.1", port=7860, device=None, **launch_kwargs) -> None:
    model = str(model or DEMO_MODEL)
    data = Path(data or DEMO_DATA)
    run = Path(run or default_run_dir(model, data))
    build_app(model, data, run, device).queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, **launch_kwargs)
