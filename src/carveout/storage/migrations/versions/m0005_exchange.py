"""content exchange: guest copies, the exchange log, videos.origin_cell

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The log is the record of every cross-cell flow: the database itself refuses to rewrite it.
_SQLITE_GUARDS = [
    f"CREATE TRIGGER exchange_log_no_{op_} BEFORE {op_.upper()} ON exchange_log "
    "BEGIN SELECT RAISE(ABORT, 'exchange_log is append-only'); END"
    for op_ in ("update", "delete")
]
_PG_GUARD_FN = """
CREATE OR REPLACE FUNCTION exchange_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exchange_log is append-only';
END $$
"""
_PG_GUARD = (
    "CREATE TRIGGER exchange_log_append_only BEFORE UPDATE OR DELETE ON exchange_log "
    "FOR EACH ROW EXECUTE FUNCTION exchange_log_append_only()"
)


def upgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_cell", sa.String(length=64), nullable=True))
    op.create_table(
        "guest_videos",
        sa.Column("video_id", sa.String(length=36), nullable=False),
        sa.Column("origin_cell", sa.String(length=64), nullable=False),
        sa.Column("origin_domicile", sa.String(length=2), nullable=False),
        sa.Column("creator_id", sa.String(length=36), nullable=False),
        sa.Column("creator_handle", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("video_id"),
    )
    with op.batch_alter_table("guest_videos", schema=None) as batch_op:
        batch_op.create_index("ix_guest_videos_origin_cell", ["origin_cell"], unique=False)
    op.create_table(
        "exchange_log",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("origin_cell", sa.String(length=64), nullable=False),
        sa.Column("receiving_cell", sa.String(length=64), nullable=False),
        sa.Column("video_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("exchange_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_log_receiving_cell_seq", ["receiving_cell", "seq"], unique=False
        )
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_GUARD_FN)
        op.execute(_PG_GUARD)
    else:
        for ddl in _SQLITE_GUARDS:
            op.execute(ddl)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS exchange_log_append_only ON exchange_log")
        op.execute("DROP FUNCTION IF EXISTS exchange_log_append_only()")
    op.drop_table("exchange_log")
    op.drop_table("guest_videos")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_column("origin_cell")
