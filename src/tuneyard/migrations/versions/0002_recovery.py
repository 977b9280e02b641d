"""recovery: evaluation claims, model-server identity

A finished job's leftover evaluations are claimed by one worker at a time
(eval_worker_id / eval_heartbeat_at), and a model server's pid is stored with
its start time (server_identity) so a recycled pid is never killed.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eval_worker_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("eval_heartbeat_at", sa.Float(), nullable=True))
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("server_identity", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("server_identity")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("eval_heartbeat_at")
        batch_op.drop_column("eval_worker_id")
