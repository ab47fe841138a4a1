"""Chat through the UI: answers streamed piece by piece, Stop, Markdown with highlighted code, an
answer that carries script rendered inert, the cached badge, conversations, and the quota."""
import re
import time

from playwright.sync_api import expect

from conftest import api_login, call, goto, login_ui, shown, signup_verified


def ask(page, text):
    box = page.get_by_label("Your question")
    box.fill(text)
    box.press("Enter")


def last_answer(page):
    return page.locator("article.msg.assistant").last


def test_answer_streams_piece_by_piece_and_stop_aborts(page):
    login_ui(page, signup_verified())
    goto(page, "chat")
    ask(page, "[[mock:slow]] tell me about queues slowly")
    answer = last_answer(page)
    expect(answer).to_have_class(re.compile("streaming"))
    # The text grows while the stream is open: rendered as it arrives, not at the end.
    expect(answer.locator(".content")).not_to_have_text("", timeout=10_000)
    first = answer.locator(".content").inner_text()
    time.sleep(1.2)
    second = answer.locator(".content").inner_text()
    assert len(second) > len(first), (first, second)
    assert answer.get_attribute("data-done") is None

    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-stopped", "1")
    expect(answer).not_to_have_class(re.compile("streaming"))
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    stopped = answer.locator(".content").inner_text()
    time.sleep(1.0)
    assert answer.locator(".content").inner_text() == stopped, "nothing arrives after Stop"


def test_markdown_code_is_highlighted_and_a_cached_answer_is_badged(page):
    login_ui(page, signup_verified())
    goto(page, "chat")
    question = "format this:\n```python\nprint('hi')\n```\nthanks"
    ask(page, question)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-done", "1")
    expect(answer.locator("pre code.hljs")).to_have_count(1)
    expect(answer).to_have_attribute("data-cached", "false")
    expect(page.locator(".quota")).to_contain_text(re.compile(r"Questions today: \d+/5"))

    page.get_by_role("link", name="New chat").click()
    shown(page, "chat")
    ask(page, question)
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-done", "1")
    expect(answer).to_have_attribute("data-cached", "true")
    expect(answer.get_by_text("cached", exact=True)).to_be_visible()


def test_script_in_an_answer_never_runs(page):
    login_ui(page, signup_verified())
    goto(page, "chat")
    ask(page, '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
              '<a href="javascript:window.__xss=3">click</a> [md](javascript:window.__xss=4)')
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-done", "1")
    assert page.evaluate("window.__xss") is None
    # Shown as the text the model wrote, not parsed as HTML.
    expect(answer.locator(".content")).to_contain_text("<script>window.__xss=2</script>")
    assert answer.locator("script").count() == 0
    assert answer.locator("[onerror]").count() == 0
    for href in answer.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href') || '')"):
        assert not href.lower().startswith("javascript:"), href


def test_conversations_list_open_rename_delete(page):
    login_ui(page, signup_verified())
    goto(page, "chat")
    ask(page, "first conversation about rabbits")
    expect(last_answer(page)).to_have_attribute("data-done", "1")
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]+$"))
    ask(page, "and a follow-up about carrots")
    expect(page.locator("article.msg.assistant[data-done='1']")).to_have_count(2)

    page.get_by_role("link", name="New chat").click()
    shown(page, "chat")
    ask(page, "second conversation about databases")
    expect(last_answer(page)).to_have_attribute("data-done", "1")
    titles = page.locator(".conversations li a")
    expect(titles).to_have_count(2)
    expect(titles.first).to_have_text("second conversation about databases")  # newest first
    expect(titles.nth(1)).to_have_text("first conversation about rabbits")

    titles.nth(1).click()
    expect(page).to_have_url(re.compile(r"#/chat/[0-9a-f-]+$"))
    expect(page.locator("article.msg")).to_have_count(4)
    expect(page.locator("article.msg.user").nth(1)).to_have_text(re.compile("follow-up about carrots"))

    page.prompt_answer = "Rabbit facts"
    page.get_by_role("button", name="Rename").click()
    expect(page.locator(".conversation-title")).to_have_text("Rabbit facts")
    expect(page.locator(".conversations li a", has_text="Rabbit facts")).to_be_visible()

    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".conversations li a")).to_have_count(1)
    expect(page.locator(".conversations")).not_to_contain_text("Rabbit facts")


def test_quota_exceeded_shows_a_countdown(page):
    email = signup_verified()
    token = api_login(email)["accessToken"]
    for i in range(5):  # AIRA_GPT_QUOTA_USER=5 in the suite's stack; every question new
        status, body = call("POST", "/api/gpt/qna", {"question": f"use up the quota {email} {i}"}, token=token)
        assert status == 200, body
    login_ui(page, email)
    goto(page, "chat")
    ask(page, f"one more than allowed {email}")
    alert = page.locator(".quota [role=alert]")
    expect(alert).to_contain_text("quota used up")
    expect(alert).to_contain_text(re.compile(r"resets in \d+h \d\dm|resets in \d+m \d\ds"))
