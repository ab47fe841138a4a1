"""Admins and operators through the UI: find and suspend a user, the audit log's filters and
paging, the queue table, dead letters grouped by error (replay a group: the messages are
consumed; purge a group), the nightly analysis re-run from the console, and the insights it
produces; the CLI's `dlq list` without names."""
import json
import os
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pika
import pytest
from playwright.sync_api import expect

from conftest import BIN, api_login, call, create_admin, goto, login_ui, new_email, signup_verified, wait_ready

AMQP_URL = os.environ.get("AIRA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/aira_web")


@pytest.fixture(scope="module")
def admin_email():
    return create_admin()


def test_insights_empty_state_before_any_analysis(page):
    login_ui(page, signup_verified())
    goto(page, "insights")
    expect(page.locator("[data-empty='no_insights']")).to_contain_text("No insights yet")


def test_admin_finds_and_suspends_a_user(page, new_page, admin_email):
    victim = signup_verified(new_email("victim"))
    victim_page = new_page()
    login_ui(victim_page, victim)

    login_ui(page, admin_email)
    goto(page, "admin/users")
    page.get_by_label("Find a user").fill(victim.split("@")[0])
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr[data-user]", has_text=victim)
    expect(row).to_have_count(1)
    expect(page.locator("tr[data-user]")).to_have_count(1)
    row.get_by_role("button", name=f"Suspend {victim}").click()
    expect(row).to_contain_text("suspended")

    # The suspended user's session is over: a reload lands on the login page, and logging in says why.
    victim_page.reload()
    wait_ready(victim_page)
    expect(victim_page.get_by_role("link", name="Log in")).to_be_visible()
    victim_page.goto("/#/login")
    victim_page.get_by_label("Email").fill(victim)
    victim_page.get_by_label("Password").fill("a long passphrase 1")
    victim_page.get_by_role("button", name="Log in").click()
    expect(victim_page.get_by_role("alert")).to_contain_text("suspended")

    row.get_by_role("button", name=f"Unsuspend {victim}").click()
    expect(row).to_contain_text("active")
    api_login(victim)


def test_audit_log_filters_and_pages(page, admin_email):
    user = signup_verified()
    token = api_login(user)["accessToken"]
    for i in range(54):  # 55 logins: more than one page of 50
        api_login(user)
    user_id = call("GET", "/api/users/me", token=token)[1]["id"].lower()
    login_ui(page, admin_email)
    goto(page, "admin/audit")
    page.get_by_label("User").fill(user_id)
    page.get_by_label("Type").fill("login")
    # Events reach the log through the audit writer: wait for all five logins.
    deadline = time.time() + 20
    while True:
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(300)
        if page.get_by_role("button", name="Load more").is_visible() or time.time() > deadline:
            break
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(55)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    for text in rows.all_inner_texts():
        assert "\tlogin\t" in text and user_id in text
    # A time range that ends before the account existed finds nothing.
    page.get_by_label("To").fill("2020-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No events match.")).to_be_visible()


def test_queue_table_refreshes(page, admin_email):
    login_ui(page, admin_email)
    goto(page, "ops/queues")
    for queue in ["auth.credentials", "auth.sessions", "gpt.ask", "audit.events", "email.send", "thumbnail.generate", "analysis.user"]:
        expect(page.locator(f"tr[data-queue='{queue}']")).to_be_visible()
    # Every queue has its service consuming it in the suite's stack. The management API samples
    # every 5 s: just after start-up a queue may not show its consumer yet; the table catches up.
    deadline = time.time() + 20
    while True:
        consumers = dict(zip(page.locator("tr[data-queue] th").all_inner_texts(),
                             page.locator("tr[data-queue] td:nth-child(4)").all_inner_texts()))
        if all(n.isdigit() and int(n) >= 1 for n in consumers.values()) or time.time() > deadline:
            break
        page.wait_for_timeout(1000)
    assert all(int(n) >= 1 for n in consumers.values()), consumers
    stamp = page.get_by_text(re.compile("^Updated "))
    first = stamp.inner_text()
    expect(stamp).not_to_have_text(first, timeout=8000)


def dead_letter(channel, queue, body, message_id, error, error_type):
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    channel.basic_publish(exchange="", routing_key=f"{queue}.dlq", body=json.dumps(body).encode(), properties=pika.BasicProperties(
        message_id=message_id, type="audit.event.v1", content_type="application/json", delivery_mode=2,
        headers={"x-aira-attempts": 5, "x-aira-error": error, "x-aira-error-type": error_type, "x-aira-disposition": "retries_exhausted",
                 "x-aira-first-failed-at": now, "x-aira-last-failed-at": now, "x-aira-queue": queue,
                 "x-aira-original-routing-key": f"audit.{body.get('type', 'x')}"}))


def test_operator_replays_a_dead_letter_group_and_purges_another(page, admin_email):
    """Events that died while the database was down are replayed by group and written; messages
    that can never succeed are purged. Both through the console, over the broker's real DLQ."""
    tag = uuid.uuid4().hex[:8]
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    replayed_ids = [f"web-dlq-{tag}-{i}" for i in range(3)]
    for i, mid in enumerate(replayed_ids):
        dead_letter(channel, "audit.events", {"type": f"dlq_test_{tag}", "at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                                              "attributes": {"n": str(i)}},
                    mid, "connection to the database lost (server closed the connection)", "database_unavailable")
    for i in range(2):
        dead_letter(channel, "audit.events", {"nonsense": True}, f"web-bad-{tag}-{i}", "keyNotFound: type", "decoding_failed")
    connection.close()

    login_ui(page, admin_email)
    goto(page, "ops/dlq")
    expect(page.locator("tr[data-queue='audit.events']")).to_contain_text("5")
    page.get_by_role("link", name="audit.events.dlq").click()
    groups = page.locator("tr[data-group]")
    expect(groups).to_have_count(2)
    expect(groups.first).to_contain_text("database_unavailable")  # largest group first
    expect(groups.first).to_contain_text("3")
    expect(page.locator("ul.letters > li")).to_have_count(5)

    # A message's detail: headers and body.
    page.locator(f"li[data-id='{replayed_ids[0]}'] summary").click()
    expect(page.locator(f"li[data-id='{replayed_ids[0]}'] pre").first).to_contain_text("x-aira-error-type: database_unavailable")
    expect(page.locator(f"li[data-id='{replayed_ids[0]}'] pre").nth(1)).to_contain_text(f"dlq_test_{tag}")

    page.get_by_role("button", name="Replay the group database_unavailable").click()  # dry run, confirm, replay
    expect(page.locator("tr[data-group]")).to_have_count(1)
    expect(page.locator("ul.letters > li")).to_have_count(2)

    # Consumed: the audit writer stored the three events.
    admin_token = api_login(admin_email)["accessToken"]
    deadline = time.time() + 20
    stored = []
    while time.time() < deadline:
        stored = call("GET", f"/api/admin/audit?type=dlq_test_{tag}", token=admin_token)[1]["items"]
        if len(stored) == 3:
            break
        time.sleep(0.3)
    assert sorted(e["id"] for e in stored) == sorted(replayed_ids)
    replay_events = call("GET", "/api/admin/audit?type=dlq.replayed", token=admin_token)[1]["items"]
    assert any(e["attributes"].get("moved") == "3" for e in replay_events)

    page.get_by_role("button", name="Purge the group decoding_failed").click()
    expect(page.locator("ul.letters > li")).to_have_count(0)
    expect(page.locator("tr[data-group]")).to_have_count(0)


def test_cli_dlq_list_names_every_queue_of_the_topology():
    out = subprocess.run([str(BIN / "aira-admin"), "dlq", "list", "--json"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AIRA_AMQP_URL": AMQP_URL, "AIRA_QUEUES": ""})
    assert out.returncode == 0, out.stderr
    names = {row["queue"] for row in json.loads(out.stdout)}
    assert {"auth.credentials.dlq", "auth.sessions.dlq", "gpt.ask.dlq", "audit.events.dlq", "email.send.dlq",
            "thumbnail.generate.dlq", "analysis.user.dlq"} <= names


def test_analysis_rerun_from_the_console_and_the_insights_it_draws(page, new_page, admin_email):
    # Activity today: logins, questions (gpt.asked events), a playlist.
    user = signup_verified()
    token = api_login(user)["accessToken"]
    for q in ["rabbitmq quorum queues", "postgresql vacuum tuning", "rabbitmq dead letters"]:
        assert call("POST", "/api/gpt/qna", {"question": q}, token=token)[0] == 200
    call("POST", "/api/playlists", {"title": "Analysis fodder"}, token=token)
    time.sleep(1.5)  # the audit writer batches

    login_ui(page, admin_email)
    goto(page, "ops/analysis")
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    page.get_by_label("Day to (re-)analyse").fill(today)
    page.get_by_role("button", name="Run analysis").click()
    row = page.locator(f"tr[data-day='{today}']")
    deadline = time.time() + 90
    while time.time() < deadline:
        if "completed" in (row.inner_text() if row.count() else ""):
            break
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Refresh").click()
    expect(row).to_contain_text("completed")

    viewer = new_page()
    login_ui(viewer, user)
    goto(viewer, "insights")
    expect(viewer.locator("canvas#events-chart")).to_be_visible()
    # Everyone in the suite's database is new today: no one has come back yet, so no model can
    # be fitted and the page says so instead of a number.
    likelihood = viewer.locator("[data-likelihood]").get_attribute("data-likelihood")
    assert likelihood == "none" or 0 <= int(likelihood) <= 100
    expect(viewer.locator(".bars li", has_text="rabbitmq")).to_be_visible()
    assert viewer.evaluate("c => c.width", viewer.locator("canvas#events-chart").element_handle()) > 0
