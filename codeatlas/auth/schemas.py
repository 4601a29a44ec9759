"""Request and response bodies of the auth API, and the :class:`AuthError` codes (1-C)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from codeatlas.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from codeatlas.core.timestamps import UtcDatetime
from codeatlas.security.types import PlainText


class AuthError(StrEnum):
    """`error_code` values of the auth API (also sent as `X-Error-Code`)."""

    BAD_CREDENTIALS = "BAD_CREDENTIALS"
    INACTIVE_ACCOUNT = "INACTIVE_ACCOUNT"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    RATE_LIMITED = "RATE_LIMITED"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    VERIFICATION_INVALID = "VERIFICATION_INVALID"


# Length limits are checked by validation, before any hashing: a 1 MB password is a 422.
NewPassword = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
# Login takes any string up to the RFC 5321 limit: a malformed address is just an unknown one
# (401 BAD_CREDENTIALS), so validation answers reveal nothing.
LoginEmail = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), PlainText]


class RegisterIn(BaseModel):
    email: EmailStr = Field(max_length=320)
    password: NewPassword
    full_name: FullName = ""


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str
    is_active: bool
    is_admin: bool
    email_verified_at: UtcDatetime | None
    created_at: UtcDatetime


class VerifyIn(BaseModel):
    token: str = Field(min_length=1, max_length=2048)


class ResendVerificationIn(BaseModel):
    email: LoginEmail


class AcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"


class RegisteredOut(BaseModel):
    """The same for an address that has an account and one that has not."""

    status: Literal["accepted"] = "accepted"
    email: str = Field(description="The address, normalised (trimmed, lower-cased).")
    message: str = "Check your inbox: the next step is in an e-mail to this address."


class LoginIn(BaseModel):
    email: LoginEmail
    password: AnyPassword


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Opaque; single use: each refresh returns a new one.")


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class ProfileUpdate(BaseModel):
    full_name: FullName | None = None


class PasswordChangeIn(BaseModel):
    current_password: AnyPassword
    new_password: NewPassword
