"""The person index and what links messages (step 5).

People and the records linked to them (``message_person`` gains its source,
sex, school and person), the blocking keys, the decision history, possible
matches and duplicates, household relations, the chronology's events with
versions of one source record, escalations and deadlines; and each agency's
escalation contact in the directory. Existing ``message_person`` rows keep
their values and start unlinked (``person_id`` NULL).

Revision ID: 0002_person_index
Revises: 0001_baseline
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002_person_index'
down_revision: str | None = '0001_baseline'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('personal_data_read',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agency', sa.String(length=255), nullable=False),
    sa.Column('what', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('personal_data_read', schema=None) as batch_op:
        batch_op.create_index('ix_personal_data_read_subject', ['subject', 'read_at'], unique=False)

    op.create_table('person',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('home_la', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.create_index('ix_person_home_la', ['home_la'], unique=False)

    op.create_table('deadline',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('agency', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('met_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('met_by_message_id', sa.String(length=255), nullable=True),
    sa.Column('alerted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['accepted_message.message_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id', 'agency', 'kind', name='uq_deadline_once')
    )
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.create_index('ix_deadline_agency', ['agency', 'kind'], unique=False)
        batch_op.create_index('ix_deadline_open', ['met_at', 'due_at'], unique=False)

    op.create_table('escalation',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('trigger_key', sa.String(length=64), nullable=False),
    sa.Column('triggers', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('home_la', sa.String(length=255), nullable=True),
    sa.Column('flag', sa.Text(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['accepted_message.message_id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_id', 'person_id', 'trigger_key', name='uq_escalation_once')
    )
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.create_index('ix_escalation_person', ['person_id'], unique=False)

    op.create_table('message_event',
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('sender_agency', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('child_person_id', sa.String(length=36), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('categories', sa.Text(), nullable=False),
    sa.Column('notice_type', sa.String(length=64), nullable=True),
    sa.Column('risk', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=64), nullable=True),
    sa.Column('disclosure', sa.Boolean(), nullable=False),
    sa.Column('referral', sa.Boolean(), nullable=False),
    sa.Column('late_days', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source_record', sa.String(length=255), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('previous_message_id', sa.String(length=255), nullable=True),
    sa.Column('changes', sa.Text(), nullable=True),
    sa.Column('answers_message_id', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['child_person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['accepted_message.message_id'], ),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.create_index('ix_message_event_answers', ['answers_message_id'], unique=False)
        batch_op.create_index('ix_message_event_child', ['child_person_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_message_event_source', ['sender_agency', 'source_record', 'version'], unique=False)

    op.create_table('person_relation',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('related_person_id', sa.String(length=36), nullable=False),
    sa.Column('relation', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['accepted_message.message_id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['related_person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'related_person_id', 'relation')
    )
    with op.batch_alter_table('person_relation', schema=None) as batch_op:
        batch_op.create_index('ix_person_relation_related', ['related_person_id'], unique=False)

    op.create_table('possible_duplicate',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('duplicate_of', sa.String(length=255), nullable=False),
    sa.Column('similarity', sa.Float(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('home_la', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=255), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['duplicate_of'], ['accepted_message.message_id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['accepted_message.message_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id', 'duplicate_of', name='uq_possible_duplicate_pair')
    )
    with op.batch_alter_table('possible_duplicate', schema=None) as batch_op:
        batch_op.create_index('ix_possible_duplicate_status', ['status', 'home_la'], unique=False)

    op.create_table('person_link_decision',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('explanation', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.String(length=255), nullable=False),
    sa.Column('by_person', sa.Boolean(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['record_id'], ['message_person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('person_link_decision', schema=None) as batch_op:
        batch_op.create_index('ix_person_link_decision_record', ['record_id'], unique=False)

    op.create_table('person_link_key',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['message_person.id'], ),
    sa.PrimaryKeyConstraint('key', 'record_id')
    )
    with op.batch_alter_table('person_link_key', schema=None) as batch_op:
        batch_op.create_index('ix_person_link_key_record', ['record_id'], unique=False)

    op.create_table('possible_match',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('candidate_person_id', sa.String(length=36), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('explanation', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('home_la', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=255), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['candidate_person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['record_id'], ['message_person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('record_id', 'candidate_person_id', name='uq_possible_match_pair')
    )
    with op.batch_alter_table('possible_match', schema=None) as batch_op:
        batch_op.create_index('ix_possible_match_status', ['status', 'home_la'], unique=False)

    with op.batch_alter_table('directory_agency', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_contact', sa.String(length=255), nullable=True))

    with op.batch_alter_table('message_person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('source_record', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('sex', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('school_urn', sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column('person_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('link_decision', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('link_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('link_by_person', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.alter_column('message_id',
               existing_type=sa.VARCHAR(length=255),
               nullable=True)
        batch_op.create_index('ix_message_person_person', ['person_id'], unique=False)
        batch_op.create_index('ix_message_person_source', ['source', 'source_record'], unique=False)
        batch_op.create_foreign_key('fk_message_person_person', 'person', ['person_id'], ['id'])



def downgrade() -> None:
    op.drop_table('personal_data_read')
    with op.batch_alter_table('message_person', schema=None) as batch_op:
        batch_op.drop_constraint('fk_message_person_person', type_='foreignkey')
        batch_op.drop_index('ix_message_person_source')
        batch_op.drop_index('ix_message_person_person')
        batch_op.alter_column('message_id',
               existing_type=sa.VARCHAR(length=255),
               nullable=False)
        batch_op.drop_column('link_by_person')
        batch_op.drop_column('link_score')
        batch_op.drop_column('link_decision')
        batch_op.drop_column('person_id')
        batch_op.drop_column('school_urn')
        batch_op.drop_column('sex')
        batch_op.drop_column('source_record')
        batch_op.drop_column('source')

    with op.batch_alter_table('directory_agency', schema=None) as batch_op:
        batch_op.drop_column('escalation_contact')

    with op.batch_alter_table('possible_match', schema=None) as batch_op:
        batch_op.drop_index('ix_possible_match_status')

    op.drop_table('possible_match')
    with op.batch_alter_table('person_link_key', schema=None) as batch_op:
        batch_op.drop_index('ix_person_link_key_record')

    op.drop_table('person_link_key')
    with op.batch_alter_table('person_link_decision', schema=None) as batch_op:
        batch_op.drop_index('ix_person_link_decision_record')

    op.drop_table('person_link_decision')
    with op.batch_alter_table('possible_duplicate', schema=None) as batch_op:
        batch_op.drop_index('ix_possible_duplicate_status')

    op.drop_table('possible_duplicate')
    with op.batch_alter_table('person_relation', schema=None) as batch_op:
        batch_op.drop_index('ix_person_relation_related')

    op.drop_table('person_relation')
    with op.batch_alter_table('message_event', schema=None) as batch_op:
        batch_op.drop_index('ix_message_event_source')
        batch_op.drop_index('ix_message_event_child')
        batch_op.drop_index('ix_message_event_answers')

    op.drop_table('message_event')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_person')

    op.drop_table('escalation')
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.drop_index('ix_deadline_open')
        batch_op.drop_index('ix_deadline_agency')

    op.drop_table('deadline')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_index('ix_person_home_la')

    op.drop_table('person')
