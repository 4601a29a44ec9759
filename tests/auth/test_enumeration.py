"""Issue 11, finding 8: registering and adding a project member answer the same whether or not
the address has an account (docs/SECURITY.md, "Account enumeration").

Real database, a real SMTP server (aiosmtpd) catching the e-mails.
"""

from __future__ import annotations

from email.message import Message

import httpx
from sqlalchemy import func, select

from codeatlas.auth import service
from codeatlas.auth.passwords import verify_password
from codeatlas.db.session import Database, atomic
from codeatlas.models import ProjectInvitation, ProjectMembership, User
from codeatlas.settings import Settings
from tests.auth.conftest import Inbox, verification_token
from tests.auth.helpers import API, PASSWORD, bearer, login, register
from tests.factories import auth_headers, create_user

PROJECTS = "/api/v1/projects"
CONFIRM = "Confirm your CodeAtlas account"
EXISTS = "Your CodeAtlas account already exists"
# Headers that differ between any two responses.
VARYING = {"date", "x-request-id", "content-length"}


def _same_shape(a: httpx.Response, b: httpx.Response) -> None:
    """Same status, same header names, same body keys and types."""
    assert a.status_code == b.status_code, (a.text, b.text)
    assert set(a.headers) - VARYING == set(b.headers) - VARYING
    assert a.headers["content-type"] == b.headers["content-type"]
    ja, jb = a.json(), b.json()
    assert {k: type(v) for k, v in ja.items()} == {k: type(v) for k, v in jb.items()}


def _mails(inbox: Inbox, to: str) -> list[Message]:
    return [m for m in inbox.messages if m["To"] == to]


def _text(msg: Message) -> str:
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def _users(db: Database, email: str) -> list[User]:
    async with db.session() as s:
        rows = await s.scalars(select(User).where(func.lower(User.email) == email))
        return list(rows)


async def test_register_answers_the_same_for_new_and_existing_addresses(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: Database
) -> None:
    await create_user(db, "turing@example.com", full_name="Alan")  # verified, active

    new = await register(mail_client, "hopper@example.com")
    taken_unverified = await register(mail_client, " Hopper@Example.com", "another password!")
    taken_active = await register(mail_client, "TURING@example.com", "another password!")

    assert new.status_code == 202, new.text
    for r in (taken_unverified, taken_active):
        _same_shape(new, r)
    assert new.json() == taken_unverified.json()  # the same address: byte for byte
    assert taken_active.json() == {**new.json(), "email": "turing@example.com"}
    assert "Check your inbox" in new.json()["message"]

    # nothing was created or changed for the taken addresses
    [hopper] = await _users(db, "hopper@example.com")
    assert hopper.is_active is False and hopper.full_name == "Ada"
    assert verify_password(PASSWORD, hopper.password_hash)[0]
    [turing] = await _users(db, "turing@example.com")
    assert turing.full_name == "Alan"
    assert (await login(mail_client, "turing@example.com", PASSWORD)).status_code == 200
    assert (await login(mail_client, "turing@example.com", "another password!")).status_code == 401

    # the new address got its link; each taken address's owner got the notice, without a link
    hopper_mails = _mails(inbox, "hopper@example.com")
    assert sorted(m["Subject"] for m in hopper_mails) == [CONFIRM, EXISTS]
    [turing_mail] = _mails(inbox, "turing@example.com")
    assert turing_mail["Subject"] == EXISTS
    for msg in (turing_mail, *(m for m in hopper_mails if m["Subject"] == EXISTS)):
        body = _text(msg)
        assert "already has an account" in body and "sign in" in body
        assert "token=" not in body


async def test_account_exists_notices_are_limited_per_address(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: Database, settings: Settings
) -> None:
    await create_user(db, "busy@example.com")
    limit = settings.verification_emails_per_address
    for _ in range(limit + 2):
        assert (await register(mail_client, "busy@example.com")).status_code == 202
    # the ASGI transport returns after the background tasks ran: every mail is in
    assert len(_mails(inbox, "busy@example.com")) == limit


async def _project(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    r = await client.post(PROJECTS, json={"name": "Enumeration"}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_add_member_answers_the_same_for_unknown_and_known_addresses(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    owner = await create_user(db)
    known = await create_user(db, "known@example.com")
    ho, hk = auth_headers(owner, settings), auth_headers(known, settings)
    pid = await _project(client, ho)
    members = f"{PROJECTS}/{pid}/members"

    added = await client.post(
        members, json={"email": "Known@Example.com", "role": "editor"}, headers=ho
    )
    invited = await client.post(
        members, json={"email": " Ghost@Example.com", "role": "editor"}, headers=ho
    )
    assert added.status_code == 202, added.text
    _same_shape(added, invited)
    assert added.json() == {"email": "known@example.com", "role": "editor", "status": "invited"}
    assert invited.json() == {"email": "ghost@example.com", "role": "editor", "status": "invited"}

    # the known account is a member; the unknown address waits as an invitation
    listed = (await client.get(members, headers=ho)).json()
    assert {m["email"]: m["role"] for m in listed} == {
        owner.email: "owner",
        "known@example.com": "editor",
    }
    [pending] = (await client.get(f"{PROJECTS}/{pid}/invitations", headers=ho)).json()
    assert (pending["email"], pending["role"]) == ("ghost@example.com", "editor")

    # inviting again changes the role (same answer); only owners see or cancel invitations
    again = await client.post(members, json={"email": "ghost@example.com"}, headers=ho)
    _same_shape(added, again)
    [pending] = (await client.get(f"{PROJECTS}/{pid}/invitations", headers=ho)).json()
    assert pending["role"] == "viewer"
    r = await client.get(f"{PROJECTS}/{pid}/invitations", headers=hk)
    assert (r.status_code, r.json()["error_code"]) == (403, "FORBIDDEN")
    r = await client.delete(f"{PROJECTS}/{pid}/invitations/{pending['id']}", headers=hk)
    assert r.status_code == 403

    # an invitation is cancelled only through its own project
    other = await _project(client, ho)
    r = await client.delete(f"{PROJECTS}/{other}/invitations/{pending['id']}", headers=ho)
    assert (r.status_code, r.json()["error_code"]) == (404, "NOT_FOUND")
    r = await client.delete(f"{PROJECTS}/{pid}/invitations/{pending['id']}", headers=ho)
    assert r.status_code == 204
    assert (await client.get(f"{PROJECTS}/{pid}/invitations", headers=ho)).json() == []
    r = await client.delete(f"{PROJECTS}/{pid}/invitations/{pending['id']}", headers=ho)
    assert r.status_code == 404


async def test_invitation_becomes_membership_when_the_account_is_verified(
    mail_client: httpx.AsyncClient, inbox: Inbox, db: Database, settings: Settings
) -> None:
    owner = await create_user(db)
    ho = auth_headers(owner, settings)
    invited_pid, added_pid = await _project(mail_client, ho), await _project(mail_client, ho)
    email = "newcomer@example.com"
    for pid, role in ((invited_pid, "editor"), (added_pid, "owner")):
        r = await mail_client.post(
            f"{PROJECTS}/{pid}/members", json={"email": email, "role": role}, headers=ho
        )
        assert r.status_code == 202, r.text

    assert (await register(mail_client, email)).status_code == 202
    # registered, not verified: no membership yet, the invitations wait
    [user] = await _users(db, email)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ProjectInvitation)) == 2
        assert await s.scalar(select(func.count()).where(ProjectMembership.user_id == user.id)) == 0
    # the account exists now, so adding it again to the second project adds it directly
    r = await mail_client.post(
        f"{PROJECTS}/{added_pid}/members", json={"email": email, "role": "viewer"}, headers=ho
    )
    assert r.status_code == 202, r.text

    token = verification_token(await inbox.wait_for(email))
    assert (await mail_client.post(f"{API}/verify", json={"token": token})).status_code == 200

    r = await login(mail_client, email)
    assert r.status_code == 200, r.text
    mine = await mail_client.get(PROJECTS, headers=bearer(r.json()["access_token"]))
    # the invited role; the direct membership keeps its own role over the older invitation
    assert {p["id"]: p["role"] for p in mine.json()} == {
        invited_pid: "editor",
        added_pid: "viewer",
    }
    for pid in (invited_pid, added_pid):
        assert (await mail_client.get(f"{PROJECTS}/{pid}/invitations", headers=ho)).json() == []


async def test_an_account_created_active_takes_its_invitations(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """`codeatlas users create-admin` creates a verified account: no link to click, so the
    invitations of its address are claimed at once."""
    owner = await create_user(db)
    ho = auth_headers(owner, settings)
    pid = await _project(client, ho)
    r = await client.post(
        f"{PROJECTS}/{pid}/members", json={"email": "ops@example.com", "role": "owner"}, headers=ho
    )
    assert r.status_code == 202, r.text
    async with db.session() as s, atomic(s):
        admin = await service.create_user(
            s, "Ops@Example.com", PASSWORD, is_active=True, is_admin=True
        )
    async with db.session() as s:
        role = await s.scalar(
            select(ProjectMembership.role).where(
                ProjectMembership.project_id == pid, ProjectMembership.user_id == admin.id
            )
        )
        assert role == "owner"
        assert await s.scalar(select(func.count()).select_from(ProjectInvitation)) == 0


async def test_openapi_documents_the_new_answers(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    register_responses = paths["/api/v1/auth/register"]["post"]["responses"]
    assert "202" in register_responses and not {"201", "409"} & set(register_responses)
    add = paths["/api/v1/projects/{project_id}/members"]["post"]["responses"]
    assert "202" in add and "201" not in add
    schema = add["202"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/MemberAdded")
    assert "/api/v1/projects/{project_id}/invitations" in paths
    assert "delete" in paths["/api/v1/projects/{project_id}/invitations/{invitation_id}"]
