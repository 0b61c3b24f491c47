"""Screenshots of every view of the app on the embedded demo, for docs/screenshots/.

    python scripts/screenshots.py            # needs Debian's chromium (scripts/install_test_browser.sh) and playwright
    python scripts/screenshots.py anatomy    # only these views (the others' files are left as they are)
    # a patch OR a prefix (README, the thirteenth round): docs/screenshots/two_routes_anatomy.png
    python scripts/screenshots.py anatomy --prefix two_routes_ --run runs/heldout/runs/dual_or_triangle-5-s1-lora-600

Uses the cached demo run (runs/demo, scanned on first use), or a copy of the run folder `--run` names
(its recorded model replaced by `--model` where that moved), and a throw-away decision log, so it
records nothing in the real ones.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcap_viz.demo import DEMO_DATA, DEMO_MODEL, default_run_dir  # noqa: E402
from tcap_viz.review.session import ReviewSession  # noqa: E402
from tcap_viz.ui.app import build_app, page_settings  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"]


def _open_tab(name):
    return lambda page: page.get_by_role("tab", name=name).click()


def _open_a_sample(page):
    page.locator("#tcap-samples [data-testid=cell-3-1]").click()
    page.locator("#tcap-heatmap img").wait_for()


def _heads_with_truth(page):
    page.get_by_role("tab", name="Heads").click()
    page.get_by_label("overlay ground-truth classes (evaluation only)").check()


def _show_map(page):
    page.get_by_role("tab", name="Map").click()
    page.get_by_role("button", name="Show the map").click()
    page.wait_for_selector(".tcap-map .main-svg", timeout=300_000)


def _describe_groups(page):
    page.get_by_role("tab", name="Anatomy").click()
    page.get_by_role("button", name="Describe the flagged groups").click()
    page.wait_for_selector("#tcap-group-image img", timeout=600_000)


#: (file name, what to do on the page before the shot), in order: the sample is opened from the table.
VIEWS = [("overview", lambda page: None), ("samples", _open_tab("Samples")), ("sample", _open_a_sample),
         ("heads", _heads_with_truth), ("map", _show_map), ("anatomy", _describe_groups),
         ("triage", _open_tab("Triage")), ("guide", _open_tab("Guide"))]


def _session(args, tmp: Path) -> ReviewSession:
    """The demo's session, or one on a copy of the run `--run` names; decisions go to `tmp`."""
    decisions = tmp / "decisions.sqlite"
    if args.run is None:
        return ReviewSession(DEMO_MODEL, DEMO_DATA, default_run_dir(DEMO_MODEL, DEMO_DATA), decisions=decisions)
    run = shutil.copytree(args.run, tmp / "run", ignore=shutil.ignore_patterns("decisions*"))
    stored = ReviewSession.from_run(run)
    return ReviewSession(args.model or stored.model, stored.data, run, stored.config, decisions=decisions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("views", nargs="*", help=f"views to shoot (default: all): {', '.join(n for n, _ in VIEWS)}")
    parser.add_argument("--run", type=Path, default=None, help="a run folder `tcap-viz scan` wrote (default: the demo)")
    parser.add_argument("--model", default=None, help="the run's model, where it moved since the scan")
    parser.add_argument("--prefix", default="", help="put before each file name, so the demo's shots stay")
    args = parser.parse_args()
    wanted = set(args.views) or {name for name, _ in VIEWS}
    unknown = wanted - {name for name, _ in VIEWS}
    if unknown:
        parser.error(f"no view {', '.join(sorted(unknown))}; the views: {', '.join(n for n, _ in VIEWS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(args, Path(tmp)).open()
        queue = session.queue()
        for sample_id, decision in zip(queue["id"].iloc[:3], ("poison", "poison", "unsure")):
            session.decide(sample_id, decision, "demo reviewer")
        app = build_app(session).queue()
        app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **page_settings())
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(app.local_url)
                page.wait_for_selector("text=Selected heads", timeout=300_000)
                for name, prepare in VIEWS:
                    if name not in wanted:
                        continue
                    prepare(page)
                    time.sleep(2)  # let plotly finish drawing
                    page.screenshot(path=OUT / f"{args.prefix}{name}.png", full_page=True)
                browser.close()
        finally:
            app.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
