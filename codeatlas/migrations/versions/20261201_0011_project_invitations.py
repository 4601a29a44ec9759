"""project invitations: members added by an address that has no account yet

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

Adding a project member by e-mail answers the same whether or not the address has an
account (issue 11, finding 8). For an unknown address a row of ``project_invitations`` is
kept; it becomes a ``project_members`` row when an account with that address is verified.
``(project_id, email)`` is unique; ``email`` has its own index for that lookup.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "role IN ('owner', 'editor', 'viewer')", name=op.f("ck_project_invitations_role")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_invitations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["users.id"],
            name=op.f("fk_project_invitations_invited_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_invitations")),
        sa.UniqueConstraint(
            "project_id", "email", name=op.f("uq_project_invitations_project_id_email")
        ),
    )
    op.create_index(
        op.f("ix_project_invitations_email"), "project_invitations", ["email"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_project_invitations_email"), table_name="project_invitations")
    op.drop_table("project_invitations")
