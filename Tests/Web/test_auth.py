"""End users' accounts through the UI: sign up with the mail link, log in and out, a reload that
keeps the session, sessions on several devices, password change, and token reuse."""
import re

from playwright.sync_api import expect

from conftest import PASSWORD, login_ui, new_email, signup_verified, verification_link, wait_ready


def test_signup_mail_link_login_reload_logout(page):
    email = new_email("signup")
    page.goto("/")
    wait_ready(page)
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    expect(page.get_by_text(".data/mail/")).to_be_visible()

    page.goto(verification_link(email))
    expect(page.get_by_role("heading", name="Email verified")).to_be_visible()

    login_ui(page, email)
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    # The access token is in memory only: a reload keeps the user logged in through the cookie.
    assert "accessToken" not in page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert "aira_refresh" not in page.evaluate("document.cookie"), "the refresh token must be HttpOnly"
    page.reload()
    wait_ready(page)
    expect(page.get_by_role("link", name=email)).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.reload()
    wait_ready(page)
    expect(page.get_by_role("link", name="Log in")).to_be_visible()


def test_wrong_password_is_a_clear_error(page):
    email = signup_verified()
    page.goto("/#/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("email or password is wrong")


def test_sessions_page_password_change_and_logout_everywhere(new_page):
    email = signup_verified()
    laptop, phone = new_page(user_agent="Laptop browser"), new_page(user_agent="Phone browser")
    login_ui(laptop, email)
    login_ui(phone, email)

    laptop.goto("/#/account")
    rows = laptop.locator("tr[data-session]")
    expect(rows).to_have_count(2)
    expect(laptop.locator("tr[data-session]", has_text="this device")).to_contain_text("Laptop browser")
    expect(laptop.locator("tr[data-session]", has_text="Phone browser")).to_be_visible()

    # Changing the password logs every other device out; this one stays.
    new_password = "another long passphrase 2"
    laptop.get_by_label("Current password").fill(PASSWORD)
    laptop.get_by_label("New password").fill(new_password)
    laptop.get_by_role("button", name="Change password").click()
    expect(laptop.get_by_text("Password changed")).to_be_visible()
    expect(rows).to_have_count(1)
    phone.reload()
    wait_ready(phone)
    expect(phone.get_by_role("link", name="Log in")).to_be_visible()

    # Ending another session from the list, then logging out of every device.
    login_ui(phone, email, new_password)
    laptop.reload()
    expect(laptop.locator("tr[data-session]")).to_have_count(2)
    laptop.get_by_role("button", name=re.compile("End the session of Phone browser")).click()
    expect(laptop.locator("tr[data-session]")).to_have_count(1)
    phone.reload()
    wait_ready(phone)
    expect(phone.get_by_role("link", name="Log in")).to_be_visible()

    laptop.get_by_role("button", name="Log out of every device").click()
    expect(laptop.get_by_role("heading", name="Log in")).to_be_visible()


def test_token_reuse_forces_a_clean_logout(new_page):
    """A stolen refresh cookie used elsewhere: when the owner's tab refreshes with the old one,
    the whole session ends and the page says why."""
    email = signup_verified()
    owner = new_page()
    login_ui(owner, email)
    stolen = [c for c in owner.context.cookies() if c["name"] == "aira_refresh"]
    assert stolen and stolen[0]["httpOnly"] and stolen[0]["sameSite"] == "Strict"

    thief = new_page()
    thief.context.add_cookies(owner.context.cookies())
    thief.goto("/")
    wait_ready(thief)  # the thief's refresh rotates the token
    expect(thief.get_by_role("link", name=email)).to_be_visible()

    owner.reload()  # the owner's cookie is now a used token: reuse
    wait_ready(owner)
    expect(owner.get_by_text("used twice")).to_be_visible()
    expect(owner.get_by_role("link", name="Log in")).to_be_visible()
    thief.reload()  # the family is revoked: the thief is out too
    wait_ready(thief)
    expect(thief.get_by_role("link", name="Log in")).to_be_visible()
