"""jobs outbox and leases (issue 10)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

The ``jobs`` row becomes its own outbox: ``send_at`` is set while the job's message still has
to reach the broker (written in the transaction that enqueued it), ``send_seq`` versions each
(re)queue, ``send_claimed_until`` is a relay's claim. ``lease_until``/``worker_id`` belong to
the running attempt; the reaper reclaims a ``running`` job whose lease expired.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("send_seq", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("send_claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("worker_id", sa.String(length=128), nullable=True))
    op.create_index("ix_jobs_send_at", "jobs", ["send_at"], unique=False)
    op.create_index("ix_jobs_status_lease_until", "jobs", ["status", "lease_until"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_status_lease_until", table_name="jobs")
    op.drop_index("ix_jobs_send_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("worker_id")
        batch.drop_column("lease_until")
        batch.drop_column("send_claimed_until")
        batch.drop_column("send_seq")
        batch.drop_column("send_at")
