"""knowledge base entries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

* ``kb_entries``: knowledge-base entries, global (``project_id`` NULL) or of one project;
  ``(project_id, updated_at)`` serves the entry list of a scope.
* ``kb_entry_chunks``: the embedded pieces of each entry; ``(entry_id, index)`` unique.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_kb_entries_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_kb_entries_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_entries")),
    )
    op.create_index(op.f("ix_kb_entries_author_id"), "kb_entries", ["author_id"], unique=False)
    op.create_index(
        "ix_kb_entries_project_id_updated_at",
        "kb_entries",
        ["project_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        "kb_entry_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=False),
        sa.Column("end_line", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["kb_entries.id"],
            name=op.f("fk_kb_entry_chunks_entry_id_kb_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_entry_chunks")),
    )
    op.create_index(
        "ix_kb_entry_chunks_entry_id_index", "kb_entry_chunks", ["entry_id", "index"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_kb_entry_chunks_entry_id_index", table_name="kb_entry_chunks")
    op.drop_table("kb_entry_chunks")
    op.drop_index("ix_kb_entries_project_id_updated_at", table_name="kb_entries")
    op.drop_index(op.f("ix_kb_entries_author_id"), table_name="kb_entries")
    op.drop_table("kb_entries")
