"""The dashboard in a real headless Chromium against a real `tuneyard serve`.

One server, one browser, one story in order (each step needs the one before):
sign in; upload a bad file and read its line-numbered error; upload a dataset
and see its preview; start a job from the form; watch the loss curve gain
points without a reload; see the checkpoint table fill with test results; open
a checkpoint's results and filter them to the failures; compare two
checkpoints; deploy; chat in the playground and watch the answer stream in;
another user's project is a 404; sign out and be refused.

`DASHBOARD_SCREENSHOTS=docs` saves the main pages as PNGs there (the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.server import TUNEYARD_BIN, start_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.e2e]

CHROMIUM = os.environ.get("TUNEYARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VENDOR = Path(__file__).resolve().parents[2] / "src/tuneyard/web/static/vendor"
ROWS = [{"prompt": f"say {c}:", "completion": f" {c}{c}{c}"} for c in "abcdefghijklmnopqrst"]
SHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (VENDOR / "uPlot.iife.min.js").exists():
        pytest.fail(f"{VENDOR} is empty: run `make setup` (npm ci copies htmx and uPlot)",
                    pytrace=False)
    from tests.conftest import _postgres_url, _reset_postgres

    if url := _postgres_url():
        _reset_postgres(url)  # no Pending jobs of earlier tests for this server's worker
    try:
        live = start_server(tmp_path_factory.mktemp("dashboard-home"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: `apt-get install chromium` (.ci/run does)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900},
                                      base_url=server.url)
        context.set_default_timeout(30_000)
        yield context.new_page()
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"), full_page=True)


def sign_in(page, key: str) -> None:
    page.goto("/")
    assert "/login" in page.url
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.3):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def fits_at_laptop_and_wide_screens(page) -> None:
    """No sideways scrolling of the page at 1280 px or 1920 px (wide tables scroll
    inside their own box)."""
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{overflow}px wider than a {width}px window at {page.url}"
    page.set_viewport_size({"width": 1440, "height": 900})


def test_the_dashboard_end_to_end(server, page, tmp_path):
    try:
        story(server, page, tmp_path)
    except BaseException:
        failed = tmp_path / "failure.png"
        page.screenshot(path=str(failed), full_page=True)
        print(f"the page at the failure ({page.url}): {failed}\n{page.content()[:4000]}")
        raise


def story(server, page, tmp_path):
    sign_in(page, server.key)
    page.fill("#new-project", "browser")
    page.click("text=Create project")
    page.wait_for_url("**/projects/ms-*")
    project_url = page.url

    # A file with a broken second line: the error names the line, nothing is kept.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    page.set_input_files("#upload-file", str(bad))
    page.click("#upload button[type=submit]")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert "line 2" in error.inner_text()

    good = tmp_path / "pattern.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    page.set_input_files("#upload-file", str(good))
    page.fill("#upload-name", "pattern")
    page.click("#upload button[type=submit]")
    page.wait_for_url("**/datasets/ds-*")
    assert page.locator("#preview tbody tr").count() == 5
    assert "say a:" in page.locator("#preview").inner_text()
    assert page.locator("#shape").inner_text().strip()
    shot(page, "dataset")

    # The new-job form: base model from the catalog, common parameters.
    page.click("text=Train on it")
    page.wait_for_url("**/jobs/new*")
    assert page.locator("#base_model option[value='tuneyard-tiny-chat']").is_enabled()
    page.select_option("#base_model", "tuneyard-tiny-chat")
    page.fill("#p_num_train_epochs", "2")
    page.fill("#p_logging_steps", "1")
    page.fill("#p_max_seq_length", "64")
    page.fill("#p_per_device_train_batch_size", "2")
    page.check("input[name=test_functions][value=exact_match]")
    shot(page, "new-job")
    page.click("text=Start training")
    page.wait_for_url("**/jobs/tr-*")
    job_url = page.url
    page.evaluate("window.__sameDocument = true")
    charts_height = page.locator("#charts").bounding_box()["height"]

    # The loss curve gains points in this same document (no reload) while it trains.
    points = page.locator("#charts")
    seen = []

    def trained() -> bool:
        seen.append(int(points.get_attribute("data-points") or 0))
        return page.locator("#job-status").inner_text() == "Success"

    wait_for(trained, 240, "the job to succeed")
    seen.append(int(page.locator("#charts").get_attribute("data-points") or 0))
    assert seen[0] < seen[-1] and seen[-1] >= 10, seen
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#loss-chart canvas").count() == 1
    # The curves filled in without moving anything below them.
    assert page.locator("#charts").bounding_box()["height"] == charts_height

    # The checkpoint table fills with test results (htmx refreshes it in place).
    table = page.locator("#checkpoints")
    wait_for(lambda: table.locator("tr[data-checkpoint='2'] .s-done").count() == 1
             and table.locator("tr[data-checkpoint='1'] .s-done").count() == 1,
             240, "both checkpoints to be tested", every_s=0.5)
    assert "exact_match" in table.locator("thead").inner_text()
    assert table.locator("tr.best").count() == 1
    wait_for(lambda: page.locator("#metric-select option").count() > 0, 10, "metric curves")
    shot(page, "job")
    fits_at_laptop_and_wide_screens(page)
    # The best checkpoint's weights download (a signed URL behind the link).
    href = table.locator("tr.best a", has_text="download").get_attribute("href")
    download = page.request.get(href)
    assert download.ok and len(download.body()) > 10_000
    assert "checkpoint-2.tar" in download.headers.get("content-disposition", "")

    # A checkpoint's per-example results, then only its failures.
    table.locator("tr[data-checkpoint='2'] a", has_text="results").click()
    page.wait_for_url("**/checkpoints/2/results")
    total = page.locator("#results tbody tr").count()
    assert total > 0
    page.check("input[name=failures]")
    page.wait_for_url("**failures=true*")
    failed = int(page.locator("#counts strong").inner_text())
    rows = page.locator("#results tbody tr")
    if failed:
        assert rows.count() == failed and rows.evaluate_all(
            "rs => rs.every(r => r.classList.contains('fail'))")
    else:
        assert "No examples" in rows.first.inner_text()
    page.uncheck("input[name=failures]")
    page.wait_for_load_state()

    # Side by side with checkpoint 1, on the same examples.
    page.select_option("#against", "1")
    page.wait_for_url("**against=1*")
    assert "Predicted (checkpoint 1)" in page.locator("#results thead").inner_text()
    assert page.locator("#results tbody tr").count() == total
    shot(page, "results")
    fits_at_laptop_and_wide_screens(page)

    # Deploy the best checkpoint and chat with it; the answer streams in.
    page.goto(job_url)
    page.locator("#checkpoints tr.best button", has_text="deploy").click()
    page.wait_for_url("**/deployments/dp-*")
    wait_for(lambda: page.locator("#dp-state").inner_text() == "Deployed", 180,
             "the deployment to load", every_s=0.5)
    page.fill("input[name=max_new_tokens]", "12")
    page.fill("#chat-input", "say c:")
    page.press("#chat-input", "Enter")
    answer = page.locator("#chat-log li.assistant")
    wait_for(lambda: answer.get_attribute("aria-busy") == "false", 60, "the streamed answer")
    assert not page.locator("#play-error").is_visible(), page.locator("#play-error").inner_text()
    assert answer.inner_text().strip()
    # Assembled from several server-sent deltas, not one JSON answer.
    assert int(answer.get_attribute("data-pieces")) >= 2
    shot(page, "playground")
    page.click("#dp-status button:has-text('Cancel')")
    wait_for(lambda: page.locator("#dp-state").inner_text() == "Cancelled", 30, "cancelled")
    page.click("#dp-status button:has-text('Reactivate')")
    wait_for(lambda: page.locator("#dp-state").inner_text() in ("Pending", "Deploying",
                                                                 "Deployed"), 30, "reactivated")

    page.goto(project_url)
    assert page.locator("#dp-h + .scroll tbody tr").count() == 1
    shot(page, "project")

    # Another user's project is a 404, in the browser too.
    other_key = subprocess.run([str(TUNEYARD_BIN), "keys", "create", "--name", "other"],
                               env=server.env, capture_output=True, text=True,
                               check=True).stdout.strip()
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    sign_in(page, other_key)
    response = page.goto(project_url)
    assert response.status == 404 and "Not found" in page.content()

    # Signed out, the project page refuses and asks for a key instead.
    page.goto("/")
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    response = page.goto(project_url)
    assert "/login" in page.url and "pattern" not in page.content()
    assert page.context.cookies() == [] or all(c["name"] != "tuneyard_session"
                                               for c in page.context.cookies())
