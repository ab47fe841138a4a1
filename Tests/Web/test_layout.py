"""Every page, at 1280x800 and at a phone's 375 px: nothing wider than the screen, a label on every
control, usable with the keyboard alone. With AIRA_WEB_SCREENSHOTS=DIR, each page is saved there
as a PNG at both sizes (scripts/screenshots makes docs/web/ this way)."""
import json
import os
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pika
import pytest
from playwright.sync_api import expect

from conftest import BASE, PASSWORD, api_login, call, create_admin, goto, guard, signup_verified, wait_ready

SHOTS = os.environ.get("AIRA_WEB_SCREENSHOTS")
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 812}}
PAGES = [  # (name, path, who)
    ("home", "", None), ("login", "login", None), ("signup", "signup", None), ("playlists-public", "playlists?tab=public", None),
    ("chat", "chat/{conversation}", "user"), ("playlists", "playlists?tab=mine", "user"), ("playlist", "playlists/{playlist}", "user"),
    ("videos", "videos", "user"), ("video", "videos/{video}", "user"), ("insights", "insights", "user"), ("account", "account", "user"),
    ("admin-users", "admin/users", "admin"), ("admin-audit", "admin/audit", "admin"), ("ops-queues", "ops/queues", "admin"),
    ("ops-dlq", "ops/dlq", "admin"), ("ops-dlq-audit", "ops/dlq/audit.events", "admin"), ("ops-analysis", "ops/analysis", "admin"),
    ("posts", "posts", None), ("posts-search", "posts?q=quorum", "user"), ("post", "posts/{post}", "user"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A user with a conversation, playlists, a ready video and insights; an admin; dead letters."""
    user, admin = signup_verified("ada-" + uuid.uuid4().hex[:6] + "@example.com"), create_admin()
    token = api_login(user)["accessToken"]
    conversation = "demo-" + uuid.uuid4().hex[:8]
    for q in ["How do quorum queues survive a node loss?", "Show a Swift example:\n```swift\nlet queue = \"audit.events\"\nprint(queue)\n```"]:
        req = {"question": q, "conversationId": conversation}
        assert call("POST", "/api/gpt/qna", req, token=token)[0] == 200
    playlist = None
    for title, public in [("Conference talks", True), ("Cooking 요리", False), ("Road trip 🚗", True)]:
        status, body = call("POST", "/api/playlists", {"title": title, "description": "Things worth watching twice", "public": public}, token=token)
        playlist = playlist or body["id"]
    post = None
    for title, text, tags in [("Quorum queues after a node loss", "A quorum queue keeps a majority of its replicas. When a node is lost the "
                               "others elect a leader and carry on; consumers reconnect. 커피를 마시며 읽기 좋은 글.", ["rabbitmq", "ops"]),
                              ("Vacuum in PostgreSQL", "Dead rows wait for vacuum; autovacuum keeps up unless long transactions hold it back.", ["postgres"])]:
        status, body = call("POST", "/api/posts", {"title": title, "body": text, "tags": tags}, token=token)
        assert status == 201, body
        post = post or body["id"]
    clip = tmp_path_factory.mktemp("m") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10", "-pix_fmt", "yuv420p", str(clip)],
                   check=True, timeout=60)
    import urllib.request
    req = urllib.request.Request(f"{BASE}/api/videos?title=Test%20pattern", data=clip.read_bytes(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "video/mp4"})
    video = json.loads(urllib.request.urlopen(req, timeout=30).read())["id"]
    assert call("PUT", f"/api/playlists/{playlist}/videos/{video}", token=token)[0] == 204
    deadline = time.time() + 30
    while call("GET", f"/api/videos/{video}")[1]["status"] == "processing" and time.time() < deadline:
        time.sleep(0.3)

    # Four weeks of history for the insights page: the demo user and 60 others, some of whom
    # came back today and some not, so the nightly model has both outcomes to learn from.
    user_id = call("GET", "/api/users/me", token=token)[1]["id"].lower()
    history = f"""
        SELECT setseed(0.42);
        INSERT INTO audit_log (message_id, type, user_id, occurred_at, attributes)
        SELECT 'demo-' || u || '-' || d, CASE WHEN d % 3 = 0 THEN 'gpt.asked' ELSE 'login' END,
               md5('demo-user-' || u)::uuid, now() - make_interval(days => d, hours => u % 5),
               CASE WHEN d % 3 = 0 THEN jsonb_build_object('question', 'queues and consumers ' || u) ELSE '{{}}' END
        FROM generate_series(1, 60) u, generate_series(1, 27) d
        WHERE random() < CASE WHEN u % 2 = 0 THEN 0.6 ELSE 0.15 END
        ON CONFLICT DO NOTHING;
        INSERT INTO audit_log (message_id, type, user_id, occurred_at)
        SELECT 'demo-today-' || u, 'login', md5('demo-user-' || u)::uuid, now() - interval '5 minutes'
        FROM generate_series(1, 60) u WHERE u % 2 = 0 OR u % 7 = 0 ON CONFLICT DO NOTHING;
        INSERT INTO audit_log (message_id, type, user_id, occurred_at, attributes)
        SELECT 'demo-ada-' || d, 'gpt.asked', '{user_id}', now() - make_interval(days => d),
               jsonb_build_object('question', (ARRAY['rabbitmq quorum queues', 'postgres vacuum', 'swift concurrency', 'redis streams'])[1 + d % 4])
        FROM generate_series(1, 27) d WHERE d % 2 = 1 OR d < 6 ON CONFLICT DO NOTHING;
        """
    subprocess.run(["psql", os.environ["AIRA_DATABASE_URL"], "-q", "-v", "ON_ERROR_STOP=1", "-c", history],
                   check=True, capture_output=True, timeout=60)

    admin_token = api_login(admin)["accessToken"]
    time.sleep(1.5)  # audit events reach the log in batches
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert call("POST", "/api/admin/analysis/runs", {"day": day}, token=admin_token)[0] == 202
    deadline = time.time() + 90
    while time.time() < deadline:
        runs = call("GET", "/api/admin/analysis/runs?limit=1", token=admin_token)[1]["items"]
        if runs and runs[0]["day"] == day and runs[0]["status"] == "completed":
            break
        time.sleep(1)

    connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("AIRA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/aira_web")))
    channel = connection.channel()
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for i, (error, kind) in enumerate([("connection to the database lost", "database_unavailable")] * 3 + [("keyNotFound: type", "decoding_failed")]):
        channel.basic_publish("", "audit.events.dlq", json.dumps({"type": "demo", "at": now, "attributes": {"n": str(i)}}).encode(),
                              pika.BasicProperties(message_id=f"layout-{uuid.uuid4().hex[:8]}", type="audit.event.v1", delivery_mode=2,
                                                   content_type="application/json",
                                                   headers={"x-aira-attempts": 5, "x-aira-error": error, "x-aira-error-type": kind,
                                                            "x-aira-disposition": "retries_exhausted", "x-aira-first-failed-at": now,
                                                            "x-aira-last-failed-at": now, "x-aira-queue": "audit.events"}))
    connection.close()
    return {"user": user, "admin": admin, "conversation": conversation, "playlist": playlist, "video": video, "post": post}


def open_as(browser, who, world, size):
    context = browser.new_context(base_url=BASE, viewport=SIZES[size], device_scale_factor=1)
    page = context.new_page()
    page.guard = guard(page)
    if who:
        page.goto("/#/login")
        page.get_by_label("Email").fill(world[who])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.locator("main[data-page='chat'], main[data-page='chat/']").first.wait_for(state="attached")
    return context, page


UNLABELLED = """() => [...document.querySelectorAll('main input:not([type=hidden]), main select, main textarea, main button, header button')]
  .filter(el => el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_fits_the_screen_and_labels_every_control(browser, world, size):
    problems = []
    for who in [None, "user", "admin"]:
        context, page = open_as(browser, who, world, size)
        for name, path, needs in PAGES:
            if needs != who:
                continue
            path = path.format(**world)
            goto(page, path)
            page.wait_for_load_state("networkidle")
            if name == "chat":
                expect(page.locator("article.msg.assistant")).to_have_count(2)
            if name == "video":
                expect(page.locator("[data-status='ready']")).to_be_visible(timeout=30_000)
            if name == "insights":
                expect(page.locator("canvas#events-chart")).to_be_visible()
                page.wait_for_timeout(300)  # the chart draws on the next frame
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > SIZES[size]["width"]:
                problems.append(f"{name}: {width} px wide at {SIZES[size]['width']}")
            unlabelled = page.evaluate(UNLABELLED)
            if unlabelled:
                problems.append(f"{name}: controls without a label: {unlabelled}")
            if SHOTS:
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SHOTS) / f"{name}-{size}.png"), full_page=size == "phone")
        problems += page.guard.problems
        context.close()
    assert not problems, "\n".join(problems)


def test_login_and_ask_with_the_keyboard_alone(page, world):
    page.goto("/#/login")
    wait_ready(page)
    # After a navigation the page's heading has the focus; Tab goes on from there.
    assert page.evaluate("document.activeElement.tagName") == "H1"
    email = page.get_by_label("Email")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == email.get_attribute("id"):
            break
    assert page.evaluate("document.activeElement.id") == email.get_attribute("id")
    page.keyboard.type(world["user"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.locator("main[data-page='chat']").wait_for(state="attached")
    # The page's heading takes the focus after a navigation; Tab reaches the question box.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "question":
            break
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type("asked with the keyboard only")
    page.keyboard.press("Enter")
    expect(page.locator("article.msg.assistant[data-done='1']")).to_have_count(1)
