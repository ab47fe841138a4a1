"""Posts through the UI: write one, find it by search with the matched word marked (and a
Korean word found through its particle), like it, edit it, page through a tag by page number,
another user sees it but cannot edit it, and the author deletes it."""
import uuid

from playwright.sync_api import expect

from conftest import api_login, call, goto, login_ui, shown, signup_verified


def test_write_search_like_edit_and_delete_a_post(page, new_page):
    email = signup_verified()
    word = "zorb" + uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))
    login_ui(page, email)
    goto(page, "posts")
    page.get_by_label("Title").fill(f"Notes on {word}")
    page.get_by_label("Text").fill(f"We drank coffee. The {word} was <b>loud</b>.\n오늘 커피를 마셨다.")
    page.get_by_label("Tags").fill("travel, Seoul")
    page.get_by_role("button", name="Publish").click()
    page.locator("main[data-page^='posts/']").wait_for(state="attached")
    expect(page.get_by_role("heading", name=f"Notes on {word}")).to_be_visible()
    # The body is text: markup shows as typed, never as HTML.
    expect(page.locator(".post-body")).to_contain_text("<b>loud</b>")
    expect(page.locator(".post-body b")).to_have_count(0)
    expect(page.get_by_role("link", name="#seoul")).to_be_visible()
    post_url = page.url

    # Search: the word marked in the snippet; the Korean word found through 커피를.
    goto(page, "posts")
    page.get_by_label("Search posts").fill(word)
    page.get_by_role("button", name="Search").click()
    hit = page.locator("li.post", has_text=f"Notes on {word}")
    expect(hit).to_be_visible()
    expect(hit.locator("mark", has_text=word)).to_be_visible()
    page.get_by_label("Search posts").fill(f"{word} 커피")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("li.post mark", has_text="커피를")).to_be_visible()

    # Like, then unlike.
    page.goto(post_url)
    like = page.get_by_role("button", name="Like")
    like.click()
    expect(page.locator(".likes")).to_have_text("1 like(s)")
    expect(page.get_by_role("button", name="Unlike")).to_have_attribute("aria-pressed", "true")

    # Edit.
    page.get_by_label("Title").fill(f"Notes on {word}, edited")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=f"Notes on {word}, edited")).to_be_visible()

    # Another user reads it, cannot edit it.
    other = new_page()
    login_ui(other, signup_verified())
    other.goto(post_url)
    expect(other.get_by_role("heading", name=f"Notes on {word}, edited")).to_be_visible()
    expect(other.get_by_role("button", name="Save")).to_have_count(0)
    expect(other.get_by_role("button", name="Delete post")).to_have_count(0)

    # The author deletes it.
    page.get_by_role("button", name="Delete post").click()
    shown(page, "posts")
    goto(other, post_url.split("#/", 1)[1])  # the same address: goto reloads it
    expect(other.get_by_role("heading", name="Post not found")).to_be_visible()


def test_a_tag_pages_by_number(page):
    email = signup_verified()
    token = api_login(email)["accessToken"]
    tag = "pg" + uuid.uuid4().hex[:8]
    for i in range(45):
        status, _ = call("POST", "/api/posts", {"title": f"Paged {i:02d}", "body": "text", "tags": [tag]}, token=token)
        assert status == 201
    goto(page, f"posts?tag={tag}")
    expect(page.get_by_role("heading", name="45 post(s) · page 1 of 3")).to_be_visible()
    expect(page.locator("li.post").first).to_contain_text("Paged 44")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Page 3").click()
    expect(page.get_by_role("heading", name="45 post(s) · page 3 of 3")).to_be_visible()
    expect(page.locator("li.post")).to_have_count(5)
    expect(page.locator("li.post").last).to_contain_text("Paged 00")
