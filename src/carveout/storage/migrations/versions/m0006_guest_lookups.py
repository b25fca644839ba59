"""guest_videos: indexes for the seal's guest-copy checks (by media file and by creator)

Revision ID: 0006
Revises: 0005

A sealed source lets a row of the carved jurisdictions through only as a part of a guest copy,
checked per row against guest_videos by its media file (blobs) or its creator pseudonym (staff
reads): without these indexes each check scanned every guest copy the cell holds.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("guest_videos", schema=None) as batch_op:
        batch_op.create_index("ix_guest_videos_sha256", ["sha256"], unique=False)
        batch_op.create_index("ix_guest_videos_creator_id", ["creator_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("guest_videos", schema=None) as batch_op:
        batch_op.drop_index("ix_guest_videos_creator_id")
        batch_op.drop_index("ix_guest_videos_sha256")
