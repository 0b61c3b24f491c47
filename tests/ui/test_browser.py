"""The app in a real browser (Debian's Chromium driven by Playwright, never a downloaded browser):
open a sample from the table, see its heatmap, confirm it from the triage queue with the keyboard,
export; and the page asks nothing of the internet."""

import shutil
import time
from pathlib import Path

import pytest

from tcap_viz.demo import DEMO_MODEL
from tcap_viz.review.session import ReviewSession
from tests.ui.serving import free_port
from tcap_viz.ui.app import build_app, page_settings
from tcap_viz.ui.render import GAP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (scripts/install_test_browser.sh)", allow_module_level=True)
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def served(demo_copy, demo_scan, tmp_path):
    session = ReviewSession(DEMO_MODEL, demo_copy, demo_scan.run.path, decisions=tmp_path / "decisions.sqlite")
    app = build_app(session).queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **page_settings())
    yield app, session
    app.close()


@pytest.fixture()
def page(served):
    app, _ = served
    external = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: external.append(r.url)
                if not r.url.startswith((app.local_url.rstrip("/"), "data:", "blob:")) else None)
        page.goto(app.local_url)
        page.wait_for_selector("text=Selected heads", timeout=120_000)
        yield page
        browser.close()
    assert external == [], f"the page fetched from outside the app: {external[:5]}"


def _wait_for(predicate, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_open_a_sample_from_the_table_and_see_its_heatmap(page):
    page.get_by_role("tab", name="Samples").click()
    page.locator("#tcap-samples [data-testid=cell-0-0]").wait_for()
    first_id = page.locator("#tcap-samples [data-testid=cell-0-0]").inner_text().strip()
    page.locator("#tcap-samples [data-testid=cell-0-1]").click()
    heatmap = page.locator("#tcap-heatmap img")
    heatmap.wait_for(timeout=30_000)
    assert _wait_for(lambda: heatmap.evaluate("img => img.complete && img.naturalWidth") == 2 * 384 + GAP)
    assert page.locator("#tcap-sample-id input, #tcap-sample-id textarea").input_value() == first_id
    assert page.locator(".tcap-part").count() >= 3  # system, image and query framed


def test_confirm_from_the_triage_queue_with_the_keyboard_then_export(page, served):
    _, session = served
    page.get_by_role("tab", name="Triage").click()
    page.locator("#tcap-queue [data-testid=cell-0-0]").wait_for()
    top_id = page.locator("#tcap-queue [data-testid=cell-0-0]").inner_text().strip()
    page.get_by_label("Reviewer (your login when the app has one)").fill("ana")
    page.get_by_role("tab", name="Triage").click()  # back to the queue
    page.locator("#tcap-queue [data-testid=cell-0-1]").click()
    page.locator("#tcap-heatmap img").wait_for(timeout=30_000)
    page.locator("body").click(position={"x": 5, "y": 5})  # focus off the text fields
    page.keyboard.press("p")
    assert _wait_for(lambda: session.table().set_index("id").loc[top_id, "decision"] == "poison")
    page.get_by_role("tab", name="Triage").click()
    page.get_by_role("button", name="Export the cleaned dataset").click()
    path_box = page.get_by_label("cleaned dataset")
    assert _wait_for(lambda: path_box.input_value() != "")
    cleaned = Path(path_box.input_value())
    assert cleaned.exists() and top_id not in {line.split('"')[3] for line in cleaned.read_text().splitlines()}


def test_a_selection_on_the_map_filters_the_table_and_a_click_opens_the_sample(page, served):
    _, session = served
    ids = list(session.queue()["id"].iloc[:2])
    page.get_by_role("tab", name="Map").click()
    page.get_by_role("button", name="Show the map").click()
    page.wait_for_selector(".tcap-map .main-svg", timeout=180_000)
    plot = page.locator(".tcap-map")
    points = ", ".join(f"{{customdata: '{i}'}}" for i in ids)
    plot.evaluate(f"div => div.emit('plotly_selected', {{points: [{points}]}})")  # what a lasso emits
    label = page.get_by_text("(selection of 2)")
    label.wait_for(timeout=30_000)
    cells = {page.locator(f"#tcap-samples [data-testid=cell-{r}-0]").inner_text().strip() for r in range(2)}
    assert cells == set(ids)
    page.get_by_role("tab", name="Map").click()
    plot.evaluate(f"div => div.emit('plotly_click', {{points: [{{customdata: '{ids[1]}'}}]}})")
    box = page.locator("#tcap-sample-id input, #tcap-sample-id textarea")
    assert _wait_for(lambda: box.input_value() == ids[1])


def test_the_anatomy_tab_tells_what_the_backdoor_is_and_decides_its_group_at_once(page, served):
    """Issue 14: one card per group, with the modality and where the trigger sits, and a group decision."""
    _, session = served
    page.get_by_role("tab", name="Anatomy").click()
    page.get_by_role("button", name="Describe the flagged groups").click()
    page.wait_for_selector("#tcap-group-image img", timeout=600_000)  # the model is asked again: a minute or so
    text = page.locator("#tcap-group-text")  # on a busy machine its "processing" status may outlast the picture
    assert _wait_for(lambda: text.inner_text().startswith("g1: "))
    card = text.inner_text()
    assert "'Backdoor Attack!'" in card and "lives in the image" in card and "bottom-right corner" in card
    carriers = next(g for g in session.anatomy() if g["name"] == "g1")["carriers"]
    assert f"{len(carriers)} samples of the dataset carry" in card  # the demo's 200 poisons share the patch
    picture = page.locator("#tcap-group-image img")
    assert _wait_for(lambda: picture.evaluate("img => img.complete && img.naturalWidth") > 0)
    assert page.locator("#tcap-group-examples img").count() >= 2
    page.get_by_label("Reviewer (your login when the app has one)").fill("ana")
    page.get_by_role("button", name="The whole group is poison").click()
    first = session.groups()[0]
    assert _wait_for(lambda: set(session.table().set_index("id").loc[first.ids, "decision"]) == {"poison"})
    page.get_by_role("button", name="Undo (z)").click()
    assert _wait_for(lambda: set(session.table().set_index("id").loc[first.ids, "decision"]) == {"pending"})
    page.get_by_role("button", name="Show every sample that carries it").click()  # flagged or not
    page.get_by_text(f"(selection of {len(carriers)})").wait_for(timeout=30_000)
    page.get_by_role("button", name="Show every sample (clear the selection)").click()
    page.get_by_role("tab", name="Anatomy").click()
    page.locator("#tcap-group-examples img").first.click()  # an example opens as the chosen sample
    page.locator("#tcap-heatmap img").wait_for(timeout=30_000)
    assert page.locator("#tcap-sample-id input, #tcap-sample-id textarea").input_value() == first.ids[0]


def test_the_guide_walks_a_class_through_the_live_views(page, served):
    """Issue 14, item 5: each step opens the view it talks about."""
    _, session = served
    page.get_by_role("tab", name="Guide").click()
    text = page.locator("#tcap-guide-text")
    assert _wait_for(lambda: "What a backdoor is" in text.inner_text() and "Step 1 of 7" in text.inner_text())
    page.locator("#tcap-guide-next").click()
    assert _wait_for(lambda: "One suspicious sample" in text.inner_text())
    page.locator("#tcap-guide-show").click()
    page.locator("#tcap-heatmap img").wait_for(timeout=30_000)
    box = page.locator("#tcap-sample-id input, #tcap-sample-id textarea")
    assert box.input_value() == session.queue().iloc[0]["id"]
    page.get_by_role("tab", name="Guide").click()
    for title in ("Three parts of the prompt", "A head that reacts to the trigger"):
        page.locator("#tcap-guide-next").click()  # one step at a time: each click reads the step shown
        assert _wait_for(lambda: title in text.inner_text())
    page.locator("#tcap-guide-show").click()
    layer, head = session.selected_heads()[0]
    assert _wait_for(lambda: page.locator("#tcap-head-text").inner_text().startswith(f"L{layer}H{head}:"))


def _summary(page):
    return page.locator("#tcap-summary").inner_text()


def test_the_first_hour_a_typo_a_decision_and_a_typed_threshold(page, served):
    """Issue 13, items 10, 11, 14, 15: what a first-time analyst ran into."""
    _, session = served
    # before a sample is chosen, the Sample tab says how to choose one, not empty headers
    page.get_by_role("tab", name="Sample", exact=True).click()
    assert "Choose a sample" in page.locator("#tcap-sample-text").inner_text()
    assert not page.locator("#tcap-detail-body").is_visible()
    # a mistyped id says so in the Sample view, and breaks nothing else
    box = page.locator("#tcap-sample-id input, #tcap-sample-id textarea")
    box.fill("no-such-sample")
    box.press("Enter")
    assert _wait_for(lambda: "No sample `no-such-sample`" in page.locator("#tcap-sample-text").inner_text()
                     or "No sample no-such-sample" in page.locator("#tcap-sample-text").inner_text())
    page.get_by_role("tab", name="Triage").click()
    page.locator("#tcap-queue [data-testid=cell-0-1]").click()
    page.locator("#tcap-heatmap img").wait_for(timeout=30_000)
    top_id = box.input_value()
    assert "Why flagged" in page.locator("#tcap-detail-body").inner_text()
    # the demo is scanned without its base: the heads' finding was confirmed by its trigger
    assert "Confirmed:" in page.locator("#tcap-detail-body").inner_text()
    # the keys are explained; Esc leaves the name field, so p decides instead of typing
    assert "Esc leaves a field" in page.locator("#tcap-shortcut-hint").inner_text()
    name = page.get_by_label("Reviewer (your login when the app has one)")
    name.fill("ana")
    name.press("Escape")
    page.keyboard.press("p")
    assert _wait_for(lambda: session.table().set_index("id").loc[top_id, "decision"] == "poison")
    assert name.input_value() == "ana"
    # the overview's review counts follow without a reload
    page.get_by_role("tab", name="Overview").click()
    assert _wait_for(lambda: "poison 1" in _summary(page))
    # it says which signals voted, with their weight, and whether the flagged samples share an answer
    assert "Signals that voted" in _summary(page) and "%" in _summary(page).split("Signals that voted")[1]
    assert "Confirmation." in _summary(page) and "confirmed: 200 samples carry" in _summary(page)
    assert "The flagged samples share one answer" in _summary(page) and "backdoor attack!" in _summary(page)
    # a threshold typed in the box and confirmed with Enter re-flags, shown as typed
    number = page.locator("input[type=number]").first
    number.fill("0.002")
    number.press("Enter")
    assert _wait_for(lambda: "posterior > 0.002" in _summary(page))
    share = page.locator("#tcap-responses [data-testid=cell-0-2]")
    assert _wait_for(lambda: share.inner_text().strip().endswith("%"))
    # the method's terms are explained where they are shown (item 16)
    page.get_by_text("What the terms mean").first.click()
    assert _wait_for(lambda: page.get_by_text("Separation score (SS)").first.is_visible())


def test_a_sample_below_the_threshold_is_not_called_flagged(page, served):
    _, session = served
    table = session.table()
    low = table[(~table["flagged"]) & (table["votes"] > 0)]
    sample = (low if len(low) else table[~table["flagged"]])["id"].iloc[0]
    box = page.locator("#tcap-sample-id input, #tcap-sample-id textarea")
    box.fill(sample)
    box.press("Enter")
    page.get_by_role("tab", name="Sample", exact=True).click()
    page.locator("#tcap-heatmap img").wait_for(timeout=30_000)
    body = page.locator("#tcap-detail-body").inner_text()
    assert "Why flagged" not in body and "Not flagged" in body and "Not confirmed:" in body


def test_the_first_scan_shows_one_progress_bar_that_moves(tiny_model_dir, tiny_data_path, tmp_path, monkeypatch):
    """Issue 13, item 12: the first scan's bar stayed at 0% and was repeated over every output."""
    from tcap_viz import pipeline

    extract = pipeline.extract_profiles

    def slowly(*args, **kwargs):  # the tiny scan is too fast to watch: let each chunk take a moment
        time.sleep(1.5)
        return extract(*args, **kwargs)

    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 8)  # 40 samples: 5 chunks
    monkeypatch.setattr(pipeline, "extract_profiles", slowly)
    session = ReviewSession(tiny_model_dir, tiny_data_path, tmp_path / "run", decisions=tmp_path / "d.sqlite")
    app = build_app(session).queue()
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **page_settings())
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.local_url)
            seen = []
            end = time.time() + 60
            while time.time() < end and "Selected heads" not in page.locator("#tcap-summary").inner_text():
                # read every bar in one step: a bar that vanishes between a count and a read would stall the read
                seen.append(page.eval_on_selector_all("[role=progressbar]", "bars => bars.map(b => b.getAttribute('aria-valuenow'))"))
                time.sleep(0.3)
            browser.close()
    finally:
        app.close()
    shown = [values for values in seen if values]
    assert shown and max(len(values) for values in shown) == 1  # one bar, not one per output
    percents = {float(value) for values in shown for value in values if value}
    assert any(0 < value < 100 for value in percents), shown[:8]  # it moves
