"""Browser tests: the session's application served on 127.0.0.1 by a real HTTP server in a
background thread, driven by Playwright through the system's Chromium (Debian's `chromium`,
or HOUTAI_CHROMIUM), headless. Without a Chromium the tests are skipped (a machine with only
Python still passes `make test`), unless HOUTAI_REQUIRE_BROWSER=1, where they fail.

On a failed test every open page is saved as a full-page screenshot into HOUTAI_E2E_ARTIFACTS
(default tests/e2e/artifacts) and the paths are printed with the failure."""
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

REQUIRE_BROWSER = os.environ.get("HOUTAI_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(os.environ.get("HOUTAI_E2E_ARTIFACTS")
                 or Path(__file__).resolve().parent / "artifacts")
# Every auto-waiting step and expect() gives up after this long (a hung page fails fast).
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """HOUTAI_CHROMIUM, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    for candidate in (os.environ.get("HOUTAI_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (HOUTAI_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def live_server(app):
    """The test application on http://127.0.0.1:<free port>, one thread per request (each in
    its own application context and database session, as under gunicorn)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):   # errors are still logged
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session (a fresh context, so fresh cookies, per test)."""
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium: install Debian's `chromium` or set HOUTAI_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the `playwright` package is not installed (pip install -r requirements.txt)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=args)
        yield browser
        browser.close()


@pytest.fixture
def e2e_jobs(app, monkeypatch):
    """Jobs and event handlers run in-process right after each commit (the server's requests
    and the test's own service calls alike): no worker is needed to see their effects."""
    monkeypatch.setitem(app.config, "REDIS_URL", None)


@pytest.fixture
def console(chromium, live_server, users, e2e_jobs):
    """console("OrderOps") → a new browser page logged in through the login form as that
    user (each in its own browser context: its own cookies, so its own session)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    contexts = []

    def login(username, locale="en"):
        """Log in; then pick `locale` in the language menu's place (None: keep the default)."""
        name = users[username].username if username in users else username
        context = chromium.new_context(base_url=live_server, viewport={"width": 1280,
                                                                       "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login/")
        page.locator("input[name=username]").fill(name)
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("form input[type=submit], form button[type=submit]").first.click()
        expect(page.locator("input[name=password]")).to_have_count(0)
        if locale:
            page.goto(f"/lang/{locale}")
        return page

    yield login
    for context in contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves a full-page screenshot of each page it had open."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or "chromium" not in getattr(item, "funcargs", {}):
        return
    browser = item.funcargs["chromium"]
    saved = []
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::")[-1])[:120]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = [page for context in browser.contexts for page in context.pages]
    for n, page in enumerate(pages, start=1):
        path = ARTIFACTS / f"{stem}-{report.when}-{n}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            saved.append(f"{path} ({page.url})")
        except Exception as exc:  # noqa: BLE001 - a closed page must not hide the failure
            saved.append(f"{path}: not saved ({exc})")
    if saved:
        text = "\n".join(saved)
        report.sections.append(("e2e screenshots", text))
        print(f"\ne2e screenshots of {item.nodeid}:\n{text}")

