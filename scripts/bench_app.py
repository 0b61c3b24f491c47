"""Benchmark: choosing a sample -> its detail ready, on the demo run and on a 100k-sample run.

    python scripts/bench_app.py [--n-large 100000] [--repeats 30]

Prints a markdown table (docs/APP_PERFORMANCE.md holds the committed numbers). Two paths are timed
for randomly chosen samples: the engine (`ReviewSession.detail` plus the heatmap, the token HTML and
the shares chart) and the app's public `/sample_detail` endpoint through gradio_client (HTTP, queue,
image encoding). Also timed: one filtered, sorted page of the samples table.

The 100k-sample run reuses the demo's images and records under new ids, and its profiles are the
demo's profiles repeated with a little noise, stored as a cached extraction: a real model pass over
100k samples (about 30 minutes here) would add nothing to what this measures, the cost of a selection.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.attention.extract import Extraction  # noqa: E402
from tcap_viz.data import load_dataset  # noqa: E402
from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, default_run_dir  # noqa: E402
from tcap_viz.pipeline import cache_key  # noqa: E402
from tcap_viz.review.session import ReviewSession, SampleQuery  # noqa: E402
from tcap_viz.storage.run_dir import RunDir  # noqa: E402
from tcap_viz.ui import figures  # noqa: E402
from tcap_viz.ui.app import MEAN_OF_SELECTED, build_app  # noqa: E402
from tcap_viz.ui.render import attention_picture, token_html  # noqa: E402


def large_run(folder: Path, n: int) -> tuple[Path, Path]:
    """A dataset of n records (demo records under new ids) and a run holding its cached profiles."""
    demo = load_dataset(DEMO_DATA)
    demo_profiles = RunDir(default_run_dir(DEMO_MODEL, DEMO_DATA)).load_extraction()
    rng = np.random.default_rng(0)
    data = folder / "data.jsonl"
    picks = np.arange(n) % len(demo)
    with open(data, "w", encoding="utf-8") as fh:
        for i, k in enumerate(picks):
            record = {**demo[k].record, "id": f"b{i:06d}", "image": str(demo[k].image_path)}
            fh.write(json.dumps(record) + "\n")
    profiles = demo_profiles.profiles[picks] * rng.normal(1, 0.01, (n, 1, 1, 1)).astype(np.float32)
    profiles /= profiles.sum(-1, keepdims=True)
    extraction = Extraction([f"b{i:06d}" for i in range(n)], profiles.astype(np.float32),
                            demo_profiles.vision_entropy[picks])
    run = folder / "run"
    RunDir(run).save_extraction(extraction, cache_key(DEMO_MODEL, load_dataset(data)))
    return data, run


def engine_detail(session: ReviewSession, sample_id: str) -> None:
    d = session.detail(sample_id)
    row = d.attention.row(session.selected_heads())
    attention_picture(d.image, d.attention, row)
    token_html(d.attention, row)
    figures.layer_shares(d.attention.shares()).to_json()


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, data: Path, run: Path, repeats: int, rng) -> list[str]:
    from gradio_client import Client

    start = time.perf_counter()
    session = ReviewSession(DEMO_MODEL, data, run, decisions=Path(tempfile.mkdtemp()) / "d.sqlite").open()
    opened = time.perf_counter() - start
    ids = list(session.table()["id"])
    engine_detail(session, ids[0])  # loads the model once, as the first selection in the app does
    picks = iter(rng.choice(ids, size=3 * repeats))
    engine = timed(lambda: engine_detail(session, next(picks)), repeats)
    query = timed(lambda: session.query(SampleQuery(text="colour", flag="all", sort_by="posterior")), repeats)
    app = build_app(session).queue()
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(app.local_url, verbose=False)
        client.predict(api_name="/open_run")
        api = timed(lambda: client.predict(next(picks), MEAN_OF_SELECTED, 0.5, api_name="/sample_detail"), repeats)
    finally:
        app.close()
    rows = []
    for what, times in (("detail, engine", engine), ("detail, app API", api), ("samples page (search + sort)", query)):
        rows.append(f"| {name} ({len(ids):,} samples) | {what} | {statistics.median(times) * 1000:.0f} | "
                    f"{np.percentile(times, 90) * 1000:.0f} |")
    rows.append(f"| {name} ({len(ids):,} samples) | open the run (cached profiles, detection) | {opened * 1000:.0f} | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-large", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ReviewSession(DEMO_MODEL, DEMO_DATA, default_run_dir(DEMO_MODEL, DEMO_DATA)).open()  # the demo scan, cached
    rows = measure("demo", DEMO_DATA, default_run_dir(DEMO_MODEL, DEMO_DATA), args.repeats, rng)
    with tempfile.TemporaryDirectory() as tmp:
        data, run = large_run(Path(tmp), args.n_large)
        rows += measure("synthetic", data, run, args.repeats, rng)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"python {platform.python_version()}, torch {torch.__version__}; {args.repeats} selections each\n")
    print("| run | step | median ms | p90 ms |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
