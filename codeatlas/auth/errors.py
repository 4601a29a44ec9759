"""The auth domain's errors: each carries one :class:`AuthError` code through the envelope.

`BadCredentials` is the only answer a login gets until the password is proven, whatever was
wrong (unknown e-mail or wrong password): same status, body and `X-Error-Code`.
"""

from __future__ import annotations

from codeatlas.auth.schemas import AuthError
from codeatlas.errors import BadRequest, Conflict, Forbidden, Unauthorized

_BEARER = {"WWW-Authenticate": "Bearer"}


class BadCredentials(Unauthorized):
    error_code = AuthError.BAD_CREDENTIALS.value
    message = "Incorrect e-mail or password"

    def __init__(self) -> None:
        super().__init__(headers=_BEARER)


class InactiveAccount(Forbidden):
    error_code = AuthError.INACTIVE_ACCOUNT.value
    message = "Account is not active; follow the link in the verification e-mail"


class TokenExpired(Unauthorized):
    error_code = AuthError.TOKEN_EXPIRED.value
    message = "Token expired"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers=_BEARER)


class TokenInvalid(Unauthorized):
    error_code = AuthError.TOKEN_INVALID.value
    message = "Invalid token"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers=_BEARER)


class EmailTaken(Conflict):
    error_code = AuthError.EMAIL_TAKEN.value
    message = "An account with this e-mail address already exists"


class VerificationInvalid(BadRequest):
    error_code = AuthError.VERIFICATION_INVALID.value
    message = "Invalid verification link"


class WrongCurrentPassword(BadRequest):
    """Password change with a wrong current password: 400, not 401, so clients that treat
    401 as "signed out" do not drop a valid session."""

    error_code = AuthError.BAD_CREDENTIALS.value
    message = "Current password is incorrect"
