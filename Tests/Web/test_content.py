"""Playlists and videos through the UI: upload with progress to a thumbnail, a failed upload's
reason, play and like; playlists created, edited, made public, seen (or not) by another user,
paged with "Load more", videos added and removed."""
import re
import subprocess

import pytest
from playwright.sync_api import expect

from conftest import api_login, call, goto, login_ui, shown, signup_verified


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A real 2-second MP4 made by ffmpeg."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Sniffed as an MP4 (its header says so), but no decoder can read it."""
    path = tmp_path_factory.mktemp("media") / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x13" * 4096)
    return path


def upload(page, path, title):
    goto(page, "videos")
    page.get_by_label("File").set_input_files(str(path))
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"#/videos/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def test_upload_shows_progress_then_the_thumbnail_and_plays_and_likes(page, clip):
    login_ui(page, signup_verified())
    goto(page, "videos")
    page.get_by_label("File").set_input_files(str(clip))
    page.get_by_label("Title").fill("Test pattern")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"#/videos/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Test pattern")).to_be_visible()
    # processing → ready, with the thumbnail the worker made
    ready = page.locator("[data-status='ready']")
    expect(ready).to_be_visible(timeout=30_000)
    thumb = ready.locator("img.thumbnail")
    expect(thumb).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", thumb.element_handle()) == 320

    video = ready.locator("video")
    expect(video).to_have_attribute("src", re.compile(r"/api/videos/.+/media$"))
    page.get_by_role("button", name="Play").click()
    expect(page.locator(".counts")).to_contain_text("1 plays")
    page.get_by_role("button", name="Like", exact=True).click()
    expect(page.locator(".counts")).to_contain_text("1 likes")
    page.get_by_role("button", name="Unlike").click()
    expect(page.locator(".counts")).to_contain_text("0 likes")
    assert page.evaluate("v => v.duration", video.element_handle()) == pytest.approx(2.0, abs=0.2)


def test_upload_progress_bar_moves(page, tmp_path):
    login_ui(page, signup_verified())
    big = tmp_path / "big.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=20:size=1280x720:rate=25",
                    "-b:v", "4M", "-pix_fmt", "yuv420p", str(big)], check=True, timeout=120)
    goto(page, "videos")
    page.get_by_label("File").set_input_files(str(big))
    values = []
    page.expose_function("recordProgress", lambda v: values.append(v))
    page.evaluate("""() => { const bar = document.querySelector('progress');
        new MutationObserver(() => window.recordProgress(bar.value)).observe(bar, {attributes: true}); }""")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"#/videos/[0-9a-f-]{36}$"), timeout=60_000)
    assert values and max(values) == 100, values


def test_a_failed_video_shows_the_reason(page, broken):
    login_ui(page, signup_verified())
    upload(page, broken, "Broken clip")
    failed = page.locator("[data-status='failed']")
    expect(failed).to_be_visible(timeout=30_000)
    expect(failed).to_have_attribute("role", "alert")
    assert len(failed.inner_text().strip()) > len("failed") + 3, failed.inner_text()


def test_playlists_rules_as_another_user_sees_them(page, new_page, clip):
    owner_email = signup_verified()
    login_ui(page, owner_email)
    video_id = upload(page, clip, "Clip for a playlist")

    goto(page, "playlists")
    page.get_by_label("Title").fill("Road trip")
    page.get_by_label("Description").fill("Songs and clips")
    page.get_by_role("button", name="Create playlist").click()
    page.wait_for_url(re.compile(r"#/playlists/[0-9a-f-]{36}$"))
    playlist_id = page.url.rsplit("/", 1)[1]
    shown(page, f"playlists/{playlist_id}")
    expect(page.get_by_text("Private ·")).to_be_visible()

    page.get_by_label("Add a video").select_option(video_id)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("li[data-video]")).to_have_count(1)

    # Someone else (not logged in) cannot see a private playlist.
    stranger = new_page()
    goto(stranger, f"playlists/{playlist_id}")
    expect(stranger.get_by_role("heading", name="Playlist not found")).to_be_visible()

    # Made public: now they can, without edit controls.
    page.get_by_label("Public (anyone can see it)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Public ·")).to_be_visible()
    goto(stranger, f"playlists/{playlist_id}")
    expect(stranger.get_by_role("heading", name="Road trip")).to_be_visible()
    expect(stranger.locator("li[data-video]")).to_have_count(1)
    expect(stranger.get_by_role("button", name="Save")).to_have_count(0)
    expect(stranger.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)
    goto(stranger, "playlists")
    expect(stranger.get_by_role("link", name="Road trip")).to_be_visible()

    # Another logged-in user sees it public but cannot change it (the API refuses too).
    other = signup_verified()
    token = api_login(other)["accessToken"]
    status, body = call("PATCH", f"/api/playlists/{playlist_id}", {"title": "mine now"}, token=token)
    assert status == 403, body

    # Remove the video, make it private again, delete it.
    page.get_by_role("button", name="Remove Clip for a playlist from the playlist").click()
    expect(page.locator("li[data-video]")).to_have_count(0)
    page.get_by_label("Public (anyone can see it)").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Private ·")).to_be_visible()
    goto(stranger, f"playlists/{playlist_id}")
    expect(stranger.get_by_role("heading", name="Playlist not found")).to_be_visible()
    page.get_by_role("button", name="Delete playlist").click()
    shown(page, "playlists")
    expect(page.get_by_role("link", name="Road trip")).to_have_count(0)


def test_my_playlists_load_more_over_next_cursor(page):
    email = signup_verified()
    token = api_login(email)["accessToken"]
    for i in range(13):
        status, _ = call("POST", "/api/playlists", {"title": f"List {i:02d}", "public": i % 2 == 0}, token=token)
        assert status == 201
    login_ui(page, email)
    goto(page, "playlists?tab=mine")
    cards = page.locator("ul.cards li.playlist")
    expect(cards).to_have_count(10)
    expect(cards.first).to_contain_text("List 12")  # newest first
    page.get_by_role("button", name="Load more").click()
    expect(cards).to_have_count(13)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    expect(cards.last).to_contain_text("List 00")
    expect(page.locator("ul.cards li.playlist", has_text="private")).to_have_count(6)
