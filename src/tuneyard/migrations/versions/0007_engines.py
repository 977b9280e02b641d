"""inference engines: the engines table and deployments.engine_id

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engines",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_model", sa.String(length=300), nullable=False),
        sa.Column("task_type", sa.String(length=40), nullable=False),
        sa.Column("resource_management_config", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("server_url", sa.String(length=200), nullable=True),
        sa.Column("server_pid", sa.Integer(), nullable=True),
        sa.Column("last_request_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("engines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_engines_owner_id"), ["owner_id"], unique=False)
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_deployments_engine_id"), ["engine_id"],
                              unique=False)
        batch_op.create_foreign_key("fk_deployments_engine_id", "engines", ["engine_id"],
                                    ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deployments_engine_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_deployments_engine_id"))
        batch_op.drop_column("engine_id")
    with op.batch_alter_table("engines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_engines_owner_id"))
    op.drop_table("engines")
