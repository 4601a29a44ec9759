"""The whole journey in a real browser against a real server and its job worker: register,
open the verification link from the e-mail, sign in, create a project, upload a folder,
watch indexing finish, find a file by name with the keyboard, search the code and open the
matching lines, write a knowledge entry with a Markdown preview, and, as the admin, retry a
failed job and list the users. Every page passes axe-core, with no console error or CSP
violation on the way; the main pages are saved as screenshots."""

from __future__ import annotations

import asyncio
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.web.conftest import ADMIN_EMAIL, PASSWORD, Served

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parent / "fixtures" / "sample"


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.locator("#project-list").wait_for()


def _fail_a_job(served: Served, document_id: int) -> int:
    """Mark the document's finished processing job failed, as a crash would have left it."""
    from codeatlas.db.session import Database, atomic
    from codeatlas.models.job import Job
    from codeatlas.settings import Settings

    async def run() -> int:
        db = Database(Settings(database_url=served.database_url, env="test"))
        try:
            async with db.session() as s, atomic(s):
                job_id = await s.scalar(
                    select(Job.id)
                    .where(Job.actor == "code.process_file", Job.document_id == document_id)
                    .order_by(Job.id.desc())
                    .limit(1)
                )
                assert job_id is not None
                await s.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(status="failed", last_error="RuntimeError: worker crashed")
                )
                return int(job_id)
        finally:
            await db.dispose()

    # Playwright's sync API keeps an event loop running in this thread: use another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


_DROP = """() => {
  const dt = new DataTransfer();
  const file = new File(["def dropped():\\n    return 1\\n"], "dropped.py");
  dt.items.add(file);
  const zone = document.querySelector('#dropzone');
  for (const type of ['dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
  }
}"""


def test_register_upload_search_and_admin(served: Served, watched: Any, tmp_path: Path) -> None:
    base = served.base
    email = "ada@example.com"
    w = watched()
    page = w.page

    # -- register, verify through the e-mailed link, sign in --------------------------------
    page.goto(f"{base}/register")
    w.axe("register")
    w.shoot("register")
    page.fill("#register-email", email)
    page.fill("#register-name", "Ada")
    page.fill("#register-password", PASSWORD)
    page.click("#register-submit")
    page.locator("#banner-registered").wait_for()
    first_answer = page.locator("#banner-registered").inner_text()
    assert "Check your inbox" in first_answer
    # the same address again: the same answer (issue 11, finding 8); the owner gets a notice
    page.fill("#register-email", email)
    page.fill("#register-password", "someone else's password")
    page.click("#register-submit")
    page.wait_for_function("() => !document.querySelector('#register-email').value")
    assert page.locator("#banner-registered").inner_text() == first_answer
    bodies = served.wait_for_mail(email, count=2)
    assert sum("already has an account" in b for b in bodies) == 1
    body = next(b for b in bodies if "verify-email?token=" in b)
    link = re.search(r"(http://\S+/verify-email\?token=\S+)", body).group(1)  # type: ignore[union-attr]
    page.goto(link)
    page.locator("#banner-verified").wait_for()
    w.axe("verify-email")
    w.shoot("verify-email")
    page.click("#verified-sign-in")
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.locator("#project-list").wait_for()

    # -- a project and a folder upload -------------------------------------------------------
    page.fill("#project-name", "Demo")
    page.fill("#project-description", "Sample code for the browser test")
    page.click("#create-project")
    page.wait_for_url(re.compile(r"/projects/\d+$"))
    project_id = int(page.url.rsplit("/", 1)[1])
    page.set_input_files("#upload-folder", str(SAMPLE))
    page.locator("[data-upload='1'][data-done=true]").wait_for(timeout=60_000)
    assert page.locator("#upload-progress-1").get_attribute("value") == "100"
    # an archive through the file picker, and a file dropped on the drop zone
    archive = tmp_path / "extra.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("extra/hello.py", "def hello():\n    return 'hi'\n")
    page.set_input_files("#upload-files", str(archive))
    page.locator("[data-upload='2'][data-done=true]").wait_for(timeout=60_000)
    page.evaluate(_DROP)
    page.locator("[data-upload='3'][data-done=true]").wait_for(timeout=60_000)
    assert page.locator("progress[id^=upload-progress-]").count() == 3
    page.locator("#index-files-progress").wait_for()
    # 4 files of the folder, 1 from the archive, 1 dropped
    page.locator("#index-summary", has_text="Indexing complete: 6 of 6").wait_for(timeout=240_000)
    assert page.locator("section[data-complete=true]").count() == 1
    if "ws" in page.evaluate("document.body.dataset.features").split():
        # live progress came over the WebSocket, not only by polling
        assert any('"type":"ready"' in f.replace(" ", "") for f in w.ws_frames), w.ws_frames
        assert any('"document.indexed"' in f for f in w.ws_frames), w.ws_frames[:5]
    for path in ("sample/src/config_loader.py", "extra/hello.py", "dropped.py"):
        assert page.locator(f"#file-tree a[data-path='{path}']").count() == 1, path
    w.axe("project")
    w.shoot("project")

    # -- members: an address with an account and one without get the same answer ------------
    answers = []
    for address in (ADMIN_EMAIL, "nobody-yet@example.com"):
        page.fill("#member-email", address)
        page.click("#member-add")
        page.locator("#banner-member-added", has_text=address).wait_for()
        answers.append(page.locator("#banner-member-added").inner_text().replace(address, "…"))
    assert answers[0] == answers[1]
    page.locator("tr[data-invitation]", has_text="nobody-yet@example.com").wait_for()
    w.axe("project: members and invitations")
    page.click("tr[data-invitation] button")
    page.locator("tr[data-invitation]").wait_for(state="detached")

    # -- filename search with the keyboard ---------------------------------------------------
    box = page.locator("#filename-search")
    box.click()
    box.type("str", delay=60)
    page.locator("#filename-results [role=option]").first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    assert page.locator("#filename-results [role=option]", has_text="strings.py").count() == 1
    box.press("ArrowDown")
    box.press("ArrowUp")
    active = box.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    target = page.locator(f"#{active}").inner_text()
    box.press("Enter")
    page.wait_for_url(re.compile(r"/projects/\d+/files/\d+$"))
    page.locator("h1", has_text=target).wait_for()
    page.locator("#code .line").first.wait_for()

    # -- hybrid search, then open the matching lines -----------------------------------------
    page.goto(f"{base}/projects/{project_id}")
    page.fill("#code-search", "parse configuration file")
    page.click("#code-search-submit")
    hit = page.locator("#code-search-results a.result-link", has_text="config_loader.py").first
    hit.wait_for(timeout=60_000)
    w.axe("project: search results")
    m = re.search(r"#L(\d+)-L(\d+)$", hit.get_attribute("href") or "")
    assert m, hit.get_attribute("href")
    start, end = int(m.group(1)), int(m.group(2))
    hit.click()
    page.wait_for_url(re.compile(rf"/files/\d+#L{start}-L{end}$"))
    page.locator(f"#L{start}.hl").wait_for()
    assert page.locator(".line.hl").count() == end - start + 1
    assert page.locator(f"#L{start}").is_visible()
    assert page.locator("#code .highlight, #code span[class]").count() > 0  # tokens coloured
    page.locator("#symbols a.symbol-link", has_text="parse_configuration_file").wait_for()
    w.axe("file")
    w.shoot("file")
    document_id = int(re.search(r"/files/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    # a deep link opened cold selects the range too
    page.goto(f"{base}/projects/{project_id}/files/{document_id}#L2-L3")
    page.locator("#L3.hl").wait_for()
    assert page.locator(".line.hl").count() == 2

    # -- knowledge base with a Markdown preview ----------------------------------------------
    page.goto(f"{base}/knowledge")
    page.fill("#kb-title", "Configuration")
    page.fill("#kb-content", "# Config\n\nUse **TOML** files.\n\n```python\nx = 1\n```")
    page.fill("#kb-tags", "config, howto")
    page.click("#kb-preview-button")
    page.locator("#kb-preview h1", has_text="Config").wait_for()
    assert page.locator("#kb-preview strong", has_text="TOML").count() == 1
    page.click("#kb-save")
    page.locator("#kb-saved").wait_for()
    page.locator("#kb-list", has_text="Configuration").wait_for()
    w.axe("knowledge")
    w.shoot("knowledge")

    # -- the home page at the end of it ------------------------------------------------------
    page.goto(f"{base}/")
    page.locator("#project-list a", has_text="Demo").wait_for()
    w.axe("projects")
    w.shoot("projects")
    w.assert_clean()

    # -- the admin retries a failed job and lists the users ----------------------------------
    job_id = _fail_a_job(served, document_id)
    a = watched()
    admin = a.page
    _sign_in(admin, base, ADMIN_EMAIL)
    admin.click("#nav a[href='/admin']")
    row = admin.locator(f"#jobs-table tr[data-job-id='{job_id}']")
    row.wait_for()
    assert row.get_attribute("data-status") == "failed"
    a.axe("admin: jobs")
    a.shoot("admin-jobs")
    row.locator("button[data-action=retry]").click()
    admin.locator("#jobs-msg", has_text=f"Job {job_id} re-queued").wait_for()
    deadline = time.monotonic() + 120
    while (
        admin.locator(f"#jobs-table tr[data-job-id='{job_id}']").get_attribute("data-status")
        != "succeeded"
    ):
        assert time.monotonic() < deadline, "the retried job did not succeed"
        admin.wait_for_timeout(1000)
        admin.click("#jobs-reload")
        admin.locator(f"#jobs-table tr[data-job-id='{job_id}']").wait_for()
    admin.click("#tab-users")
    admin.locator("#users-table td", has_text=email).wait_for()
    a.axe("admin: users")
    a.shoot("admin-users")
    a.assert_clean()
