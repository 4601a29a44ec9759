"""document statuses say where indexing really is: parsed, searchable

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01

``indexed`` meant "parsed" while the document's vectors and keyword postings were still to
come. It becomes two statuses: ``parsed`` (symbols and chunks stored, indexing queued) and
``searchable`` (keyword postings and vectors written, or nothing more to do). Existing
``indexed`` rows become ``searchable`` (their indexing jobs ran long ago, or will re-run on
``codeatlas reindex``). Also an index for the per-project progress counts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = "status IN ('pending', 'processing', 'parsed', 'searchable', 'failed')"
OLD = "status IN ('pending', 'processing', 'indexed', 'failed')"
PROGRESS_INDEX = "ix_code_documents_project_id_status"
NAME_INDEX = "ix_code_documents_file_name_search"


def _swap(check: str, before: str, after: str) -> None:
    with op.batch_alter_table("code_documents") as batch:
        batch.drop_constraint(op.f("ck_code_documents_status"), type_="check")
    op.execute(sa.text(f"UPDATE code_documents SET status = '{after}' WHERE status = '{before}'"))
    with op.batch_alter_table("code_documents") as batch:
        batch.create_check_constraint("status", check)
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's batch mode copies the table and cannot reflect an expression index, so
        # the filename search's index (0006) is put back.
        op.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS {NAME_INDEX} "
                "ON code_documents (lower(file_name), project_id)"
            )
        )


def upgrade() -> None:
    _swap(NEW, "indexed", "searchable")
    op.create_index(PROGRESS_INDEX, "code_documents", ["project_id", "status"])


def downgrade() -> None:
    op.drop_index(PROGRESS_INDEX, table_name="code_documents")
    op.execute(sa.text("UPDATE code_documents SET status = 'searchable' WHERE status = 'parsed'"))
    _swap(OLD, "searchable", "indexed")
