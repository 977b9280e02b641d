"""training technique (SFT, DPO, GRPO), GRPO reward weights, per-step training metrics

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        # Every job made before this column existed was supervised fine-tuning.
        batch.add_column(sa.Column("training_technique", sa.String(length=10), nullable=False,
                                   server_default="SFT"))
        batch.add_column(sa.Column("reward", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("training_metrics", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("training_metrics")
        batch.drop_column("reward")
        batch.drop_column("training_technique")
