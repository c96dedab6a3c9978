"""The schema of duet 0.1.0, as SQLModel's create_all made it before there were migrations.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _fk(name: str, target: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target), nullable=False)


def upgrade() -> None:
    op.create_table(
        "runs",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("base_model", sa.String(), nullable=True),
        sa.Column("primary_task", sa.String(), nullable=True),
        sa.Column("wandb_primary_task", sa.String(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("wandb_run_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_name", "runs", ["name"], unique=True)

    op.create_table(
        "checkpoints",
        _id(),
        _fk("run_id", "runs.id"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step", name="uq_checkpoint_run_step"),
    )

    op.create_table(
        "eval_jobs",
        _id(),
        _fk("checkpoint_id", "checkpoints.id"),
        _fk("run_id", "runs.id"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_eval_jobs_lease_expires_at", "eval_jobs", ["lease_expires_at"])
    op.create_index("ix_jobs_dedupe", "eval_jobs", ["checkpoint_id", "spec_hash", "status"])
    op.create_index("ix_jobs_run", "eval_jobs", ["run_id", "status"])
    # Claim order (priority DESC, step DESC, id) served straight from an index.
    op.create_index(
        "ix_jobs_claim", "eval_jobs", ["status", sa.text("priority DESC"), sa.text("step DESC"), "id"]
    )

    op.create_table(
        "eval_results",
        _id(),
        _fk("job_id", "eval_jobs.id"),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(), nullable=False),
        _fk("checkpoint_id", "checkpoints.id"),
        _fk("run_id", "runs.id"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(), nullable=False),
        sa.Column("grader_version", sa.String(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_results_scores", "eval_results", ["run_id", "task", "checkpoint_id", "id"])

    op.create_table(
        "samples",
        _id(),
        _fk("job_id", "eval_jobs.id"),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("gold", sa.String(), nullable=False),
        sa.Column("extracted", sa.String(), nullable=True),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("format_ok", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("num_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("mean_entropy", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_samples_job_id", "samples", ["job_id"])
    op.create_index("ix_samples_job_correct", "samples", ["job_id", "correct"])
    op.create_index("ix_samples_job_category", "samples", ["job_id", "category"])

    op.create_table(
        "train_metrics",
        _id(),
        _fk("run_id", "runs.id"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "step", "key", name="uq_train_metric"),
    )

    op.create_table(
        "wandb_outbox",
        _id(),
        _fk("run_id", "runs.id"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_pending", "wandb_outbox", ["sent_at", "id"])


def downgrade() -> None:
    for table in (
        "wandb_outbox",
        "train_metrics",
        "samples",
        "eval_results",
        "eval_jobs",
        "checkpoints",
        "runs",
    ):
        op.drop_table(table)  # drops the table's indexes with it
