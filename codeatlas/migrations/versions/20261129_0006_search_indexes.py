"""filename search indexes, second version (6-A stretch targets)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Replaces the two filename-search indexes of 0003 with ones measured faster on 1 M documents
(``codeatlas bench filename-search``, docs/benchmarks.md):

* ``ix_code_documents_lower_file_name`` ``(lower(file_name), project_id)`` becomes
  ``ix_code_documents_file_name_search``, same key, and on PostgreSQL ``INCLUDE (file_name,
  file_path, id, language)``: the exact and prefix ranks read up to 500 candidates each and
  become index-only scans instead of 500 random heap reads. SQLite has no INCLUDE and gets
  the same key.
* PostgreSQL only: the ``pg_trgm`` GIN index on ``lower(file_path)`` becomes one on
  ``translate(lower(file_path), '/_.-', '')``. pg_trgm cuts text into words at every
  non-alphanumeric character, so a query such as ``invoice_23/export_style`` asked the old
  index only for trigrams that thousands of paths share; with the separators deleted its
  trigrams span them and are rare. The search rechecks the exact ``LIKE`` on the candidates.
  The extension itself comes from 0003.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_NAME_INDEX = "ix_code_documents_lower_file_name"
NAME_INDEX = "ix_code_documents_file_name_search"
OLD_TRGM_INDEX = "ix_code_documents_file_path_trgm"
TRGM_INDEX = "ix_code_documents_file_path_squashed_trgm"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.drop_index(OLD_NAME_INDEX, table_name="code_documents")
    op.create_index(
        NAME_INDEX,
        "code_documents",
        [sa.text("lower(file_name)"), "project_id"],
        unique=False,
        postgresql_include=["file_name", "file_path", "id", "language"],
    )
    if _postgresql():
        op.execute(f"DROP INDEX IF EXISTS {OLD_TRGM_INDEX}")
        op.execute(
            f"CREATE INDEX {TRGM_INDEX} ON code_documents "
            "USING gin (translate(lower(file_path), '/_.-', '') gin_trgm_ops)"
        )


def downgrade() -> None:
    if _postgresql():
        op.execute(f"DROP INDEX IF EXISTS {TRGM_INDEX}")
        op.execute(
            f"CREATE INDEX {OLD_TRGM_INDEX} ON code_documents "
            "USING gin (lower(file_path) gin_trgm_ops)"
        )
    op.drop_index(NAME_INDEX, table_name="code_documents")
    op.create_index(
        OLD_NAME_INDEX,
        "code_documents",
        [sa.text("lower(file_name)"), "project_id"],
        unique=False,
    )
