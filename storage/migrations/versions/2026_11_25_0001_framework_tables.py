"""framework tables

Revision ID: 0001_framework
Revises: 
Create Date: 2026-11-25 09:03:23.489804
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = '0001_framework'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("nyala",)  # the framework's branch
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wa_id', sa.String(length=32), nullable=True),
    sa.Column('user_id', sa.String(length=160), nullable=True),
    sa.Column('profile_name', sa.String(length=256), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last_inbound_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('user_id', name=op.f('uq_contacts_user_id')),
    sa.UniqueConstraint('wa_id', name=op.f('uq_contacts_wa_id'))
    )
    op.create_table('flow_metric_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('flow_name', sa.String(length=100), nullable=False),
    sa.Column('flow_version', sa.String(length=64), nullable=False),
    sa.Column('period', sa.Enum('daily', 'weekly', 'monthly', name='snapshot_period', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('period_start', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('total_sessions', sa.Integer(), nullable=False),
    sa.Column('completed_sessions', sa.Integer(), nullable=False),
    sa.Column('abandoned_sessions', sa.Integer(), nullable=False),
    sa.Column('error_sessions', sa.Integer(), nullable=False),
    sa.Column('avg_duration_seconds', sa.Float(), nullable=True),
    sa.Column('total_errors', sa.Integer(), nullable=False),
    sa.Column('error_rate', sa.Float(), nullable=False),
    sa.Column('created_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_metric_snapshots')),
    sa.UniqueConstraint('flow_name', 'flow_version', 'period', 'period_start', name=op.f('uq_flow_metric_snapshots_flow_name_flow_version_period_period_start'))
    )
    op.create_table('stored_files',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('mime_type', sa.String(length=127), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files'))
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_files_sha256'), ['sha256'], unique=False)

    op.create_table('flow_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('flow_name', sa.String(length=100), nullable=False),
    sa.Column('flow_version', sa.String(length=64), nullable=False),
    sa.Column('started_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.Enum('active', 'completed', 'abandoned', 'error', name='flow_session_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('context_data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('current_step', sa.String(length=100), nullable=True),
    sa.Column('last_activity_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_flow_sessions_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_sessions'))
    )
    with op.batch_alter_table('flow_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_sessions_contact_id_started_at'), ['contact_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_sessions_flow_name_started_at'), ['flow_name', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_sessions_status_last_activity_at'), ['status', 'last_activity_at'], unique=False)

    op.create_table('inbound_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wa_message_id', sa.String(length=256), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('pending', 'done', 'failed', name='inbound_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('processed_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_inbound_messages_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('wa_message_id', name=op.f('uq_inbound_messages_wa_message_id'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_contact_id_status_id'), ['contact_id', 'status', 'id'], unique=False)

    op.create_table('conversations',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('flow_name', sa.String(length=100), nullable=True),
    sa.Column('flow_version', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=100), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('flow_session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('step_entered_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('retry_count', sa.Integer(), nullable=False),
    sa.Column('last_activity_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('handed_off_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('handoff_reason', sa.Text(), nullable=True),
    sa.Column('created_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_conversations_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['flow_session_id'], ['flow_sessions.id'], name=op.f('fk_conversations_flow_session_id_flow_sessions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_conversations'))
    )
    op.create_table('flow_step_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('step_name', sa.String(length=100), nullable=False),
    sa.Column('action', sa.Enum('entered', 'completed', 'skipped', 'error', 'retry', name='flow_step_action', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('timestamp', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('time_spent', sa.Float(), nullable=True),
    sa.Column('input_value', sa.Text(), nullable=True),
    sa.Column('output_value', sa.Text(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('retry_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['flow_sessions.id'], name=op.f('fk_flow_step_events_session_id_flow_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_step_events'))
    )
    with op.batch_alter_table('flow_step_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_step_events_session_id_id'), ['session_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_step_events_step_name_action'), ['step_name', 'action'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_step_events_timestamp'), ['timestamp'], unique=False)

    op.create_table('outbound_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('inbound_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.Enum('sandbox', 'queued', 'sent', 'delivered', 'read', 'failed', name='outbound_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', storage.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('wa_message_id', sa.String(length=256), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_outbound_messages_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], name=op.f('fk_outbound_messages_inbound_id_inbound_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_messages')),
    sa.UniqueConstraint('wa_message_id', name=op.f('uq_outbound_messages_wa_message_id'))
    )
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_messages_contact_id_id'), ['contact_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_messages_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_messages_status_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_outbound_messages_contact_id_id'))

    op.drop_table('outbound_messages')
    with op.batch_alter_table('flow_step_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flow_step_events_timestamp'))
        batch_op.drop_index(batch_op.f('ix_flow_step_events_step_name_action'))
        batch_op.drop_index(batch_op.f('ix_flow_step_events_session_id_id'))

    op.drop_table('flow_step_events')
    op.drop_table('conversations')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_contact_id_status_id'))

    op.drop_table('inbound_messages')
    with op.batch_alter_table('flow_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flow_sessions_status_last_activity_at'))
        batch_op.drop_index(batch_op.f('ix_flow_sessions_flow_name_started_at'))
        batch_op.drop_index(batch_op.f('ix_flow_sessions_contact_id_started_at'))

    op.drop_table('flow_sessions')
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_files_sha256'))

    op.drop_table('stored_files')
    op.drop_table('flow_metric_snapshots')
    op.drop_table('contacts')
    
