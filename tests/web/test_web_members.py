"""Project members and roles in a real browser: the owner adds a registered account by e-mail,
changes its role and removes it; what the member's own browser shows follows each step (a
viewer gets no upload or member controls, an editor gets the upload panel, a removed member
no longer sees the project), and the API refuses a viewer's writes anyway."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.web.conftest import Served, expect, sign_in

pytestmark = pytest.mark.slow

# What a member who may not edit must not be offered.
EDIT_CONTROLS = [
    "#upload-files",
    "#upload-folder",
    "#dropzone",
    "#member-form",
    "#member-email",
    "select.member-role",
    "button.member-remove",
]


def test_owner_adds_changes_and_removes_a_member(served: Served, watched: Any) -> None:
    base = served.base
    owner_email, member_email = "owner@example.com", "member@example.com"
    served.verified_user(owner_email)
    served.verified_user(member_email)

    o = watched()
    owner = o.page
    sign_in(owner, base, owner_email)
    owner.fill("#project-name", "Team")
    owner.click("#create-project")
    owner.wait_for_url(re.compile(r"/projects/\d+$"))
    project_id = int(owner.url.rsplit("/", 1)[1])
    rows = owner.locator("#members-body tr")
    expect(rows).to_have_count(1)  # the owner alone
    expect(rows.first).to_have_attribute("data-role", "owner")

    # -- add by e-mail, as a viewer -------------------------------------------------------------
    owner.fill("#member-email", member_email)
    owner.select_option("#member-role", "viewer")
    owner.click("#member-add")
    # The same words whether or not the address has an account (no enumeration).
    expect(owner.locator("#members-msg")).to_contain_text(f"{member_email} is added as viewer.")
    row = owner.locator(f"#members-body tr[data-email='{member_email}']")
    expect(row).to_have_attribute("data-role", "viewer")
    expect(owner.locator("#member-email")).to_have_value("")
    o.axe("project: members")

    # -- the viewer's browser: the project, without edit controls -------------------------------
    m = watched()
    m.expected_statuses = {404}  # the project page after the removal below
    mp = m.page
    sign_in(mp, base, member_email)
    card = mp.locator("#project-list li", has_text="Team")
    expect(card).to_contain_text("viewer")
    card.locator("a").click()
    mp.wait_for_url(re.compile(rf"/projects/{project_id}$"))
    expect(mp.locator("#members-body tr")).to_have_count(2)  # the page is drawn
    expect(mp.locator("#your-role")).to_have_text("You are a viewer of this project.")
    for selector in EDIT_CONTROLS:
        expect(mp.locator(selector)).to_have_count(0)
    m.axe("project as a viewer")

    # ...and the API refuses a viewer's writes anyway
    auth = {"Authorization": "Bearer " + served.token(member_email)}
    r = httpx.post(
        f"{base}/api/v1/projects/{project_id}/files",
        files={"files": ("x.py", b"x = 1\n")},
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 403, r.text
    r = httpx.post(
        f"{base}/api/v1/projects/{project_id}/members",
        json={"email": "someone@example.com", "role": "owner"},
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 403, r.text

    # -- the owner makes them an editor: the upload panel appears for them ----------------------
    row.locator("select.member-role").select_option("editor")
    expect(owner.locator("#members-msg")).to_have_text(f"{member_email} is now editor.")
    expect(row).to_have_attribute("data-role", "editor")
    mp.reload()
    expect(mp.locator("#your-role")).to_have_text("You are an editor of this project.")
    expect(mp.locator("#upload-files")).to_be_attached()
    expect(mp.locator("#dropzone")).to_be_visible()
    for selector in ("#member-form", "select.member-role", "button.member-remove"):
        expect(mp.locator(selector)).to_have_count(0)  # members stay the owner's business

    # -- the owner removes them: the project is gone from their browser -------------------------
    row.locator("button.member-remove").click()
    expect(owner.locator("#members-msg")).to_have_text(f"{member_email} removed.")
    expect(row).to_have_count(0)
    expect(rows).to_have_count(1)
    mp.reload()
    expect(mp.locator("#banner-page-error")).to_have_text(
        "This page does not exist or you have no access to it."
    )
    m.axe("project: no access")
    mp.click("#main a[href='/']")
    expect(mp.locator("#project-list")).to_contain_text("No projects yet")  # loaded, no Team
    o.assert_clean()
    m.assert_clean()
