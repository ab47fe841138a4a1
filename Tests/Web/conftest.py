"""The browser suite's fixtures: Debian's Chromium through Playwright, pages that fail the test
when the app shows or logs an error, and helpers that reach the real stack (mail folder, the
aira-admin CLI, the broker) started by scripts/test-web."""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

BASE = os.environ.get("AIRA_WEB_URL", "http://127.0.0.1:18080")
MAIL_DIR = Path(os.environ.get("AIRA_WEB_MAIL_DIR", ".data/web-test/mail"))
ARTIFACTS = Path(os.environ.get("AIRA_WEB_ARTIFACTS", ".data/web-test/artifacts"))
BIN = Path(os.environ.get("AIRA_BIN_DIR", ".build/debug"))
PASSWORD = "a long passphrase 1"

# Chrome reports every 4xx answer of fetch as "Failed to load resource: … status of 4xx". Those are
# the API's deliberate answers the app handles (a 404 no_insights, a 401 before a refresh, a 429
# quota): not errors of the page. A 5xx answer is checked separately and always fails the test.
EXPECTED_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": os.environ.get("AIRA_CHROMIUM", "/usr/bin/chromium")}


@pytest.fixture(scope="session")
def base_url():
    return BASE


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "base_url": BASE, "viewport": {"width": 1280, "height": 800}}


class PageGuard:
    """Collects what must never happen on a page: an uncaught exception, a console error the app
    logged, a 5xx answer from the gateway."""

    def __init__(self, page):
        self.problems = []
        self.allowed_statuses = set()
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message):
        if message.type == "error" and not EXPECTED_CONSOLE.search(message.text):
            self.problems.append(f"console error: {message.text}")

    def _response(self, response):
        if response.status >= 500 and response.status not in self.allowed_statuses:
            self.problems.append(f"{response.status} from {response.request.method} {response.url}")


def guard(page):
    g = PageGuard(page)
    page.set_default_timeout(15_000)
    # confirm() is accepted; prompt() answers with page.prompt_answer (set by the test).
    page.prompt_answer = ""
    page.on("dialog", lambda d: d.accept(page.prompt_answer) if d.type == "prompt" else d.accept())
    return g


@pytest.fixture
def page(context, request):
    """Every test's page: dialogs (confirm) accepted, errors collected and failing the test."""
    p = context.new_page()
    g = guard(p)
    p.guard = g
    yield p
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
    assert not g.problems, "the page showed or logged errors:\n" + "\n".join(g.problems)


@pytest.fixture
def new_page(browser):
    """Pages in browser contexts of their own (another device, another user), guarded too."""
    made = []

    def make(**kwargs):
        ctx = browser.new_context(base_url=BASE, viewport=kwargs.pop("viewport", {"width": 1280, "height": 800}), **kwargs)
        p = ctx.new_page()
        p.guard = guard(p)
        made.append((ctx, p))
        return p

    yield make
    problems = [x for _, p in made for x in p.guard.problems]
    for ctx, _ in made:
        ctx.close()
    assert not problems, "a page showed or logged errors:\n" + "\n".join(problems)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# --- the stack ------------------------------------------------------------------------------

def new_email(tag="user"):
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def mail_to(address, timeout=20.0):
    """The newest mail for `address` in the development mail folder (waits for it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for f in sorted(MAIL_DIR.glob("*.json"), reverse=True):
            data = json.loads(f.read_text())
            if address in data.get("rcptTo", []):
                return data
        time.sleep(0.2)
    raise AssertionError(f"no mail for {address} within {timeout} s")


def verification_link(address):
    text = mail_to(address)["text"]
    match = re.search(r"http://\S+#/verify\?token=\S+", text)
    assert match, f"no verification link in: {text}"
    return match.group(0)


def call(method, path, body=None, token=None, headers=None):
    """The API directly (setup and checks), as JSON."""
    h = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    req = urllib.request.Request(BASE + path, method=method, headers=h,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def signup_verified(email=None):
    """A verified account made through the API (for tests about something else)."""
    email = email or new_email()
    status, _ = call("POST", "/api/auth/signup", {"email": email, "password": PASSWORD})
    assert status == 201
    token = verification_link(email).split("token=", 1)[1]
    status, _ = call("POST", "/api/auth/verify", {"token": token})
    assert status == 200
    return email


def api_login(email, password=PASSWORD):
    status, body = call("POST", "/api/auth/login", {"email": email, "password": password})
    assert status == 200, body
    return body


def create_admin(email=None):
    email = email or new_email("admin")
    out = subprocess.run([str(BIN / "aira-admin"), "user", "create-admin", "--email", email],
                         input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return email


def login_ui(page, email, password=PASSWORD):
    page.goto("/#/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name=email).wait_for()


def wait_ready(page):
    """The app restored its session and drew its first page (a locator: the page's CSP forbids
    the eval that wait_for_function needs)."""
    page.locator("body[data-ready='1']").wait_for(state="attached")


def shown(page, path):
    """Waits until the app has drawn the page at #/path (after a click that navigates)."""
    page.locator(f"main[data-page='{path}']").wait_for(state="attached")


def goto(page, path):
    """Opens #/path and waits for it to be drawn (a reload when the page is there already: a
    same-address navigation would not draw it again)."""
    if page.url == f"{BASE}/#/{path}":
        page.reload()
    else:
        page.goto(f"/#/{path}")
    wait_ready(page)
    shown(page, path.split("?")[0])
