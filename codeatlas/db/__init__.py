"""Database layer: engine, sessions and the transaction rules (3-A).

Who owns the transaction: the request's session dependency (one request, one transaction,
committed when the endpoint returns, rolled back when it raises) or :func:`atomic` for code
that runs outside a request. Services only ``flush()``; they never commit.
"""

from codeatlas.db.base import Base
from codeatlas.db.session import Database, SessionDep, atomic, get_session

__all__ = ["Base", "Database", "SessionDep", "atomic", "get_session"]
