-- vtdui 0001: the plugin's durable state on PostgreSQL (same tables and meaning as the SQLite files).
-- Instants written by vtdui are timestamptz; instants received from ViaTrajectoire (meta.lastUpdated)
-- and the outbox ordering key stay text, compared exactly as in SQLite.

CREATE TABLE cursors (
    finess_eg text NOT NULL,
    flux text NOT NULL,
    instant timestamptz NOT NULL,
    last_success timestamptz NOT NULL,
    PRIMARY KEY (finess_eg, flux)
);

CREATE TABLE documents (
    vt_id text NOT NULL,
    finess_eg text NOT NULL,
    last_updated text NOT NULL,
    id_nat_decision text,
    kind text NOT NULL,
    stored_at timestamptz NOT NULL,
    PRIMARY KEY (vt_id, finess_eg)
);
CREATE INDEX documents_by_decision ON documents (id_nat_decision, finess_eg, kind);

-- raw: the quarantined document itself (workers may run on several hosts: no local file)
CREATE TABLE quarantine (
    key text NOT NULL,
    finess_eg text NOT NULL,
    flux text NOT NULL,
    vt_id text NOT NULL,
    last_updated text,
    reason text NOT NULL,
    message text NOT NULL,
    raw bytea,
    first_seen timestamptz NOT NULL,
    last_tried timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 1,
    resolved_at timestamptz,
    PRIMARY KEY (key, finess_eg)
);
CREATE INDEX quarantine_by_resource ON quarantine (vt_id, finess_eg) WHERE resolved_at IS NULL;

CREATE TABLE pending_statuses (
    vt_task_id text NOT NULL,
    finess_eg text NOT NULL,
    id_nat_decision text NOT NULL,
    last_updated text NOT NULL,
    body json NOT NULL,
    received_at timestamptz NOT NULL,
    applied_at timestamptz,
    PRIMARY KEY (vt_task_id, finess_eg)
);
CREATE INDEX pending_by_decision ON pending_statuses (id_nat_decision, finess_eg, applied_at);

CREATE TABLE consents (
    id_nat_decision text NOT NULL,
    finess_eg text NOT NULL,
    accepted_at timestamptz NOT NULL,
    evaluation_version text,
    evaluation_fetched_at timestamptz,
    PRIMARY KEY (id_nat_decision, finess_eg)
);

-- payload, origin, outcome, response: json (not jsonb) keeps the exact text, as SQLite does
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    id_nat_decision text NOT NULL,
    finess_eg text NOT NULL,
    sequence text NOT NULL,
    source_ref text,
    payload json NOT NULL,
    origin json NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'dropped')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    first_enqueued_at timestamptz NOT NULL,
    window_started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    sent_at timestamptz,
    last_error text,
    outcome json,
    response json,
    locked_by text,
    locked_until timestamptz
);
CREATE INDEX outbox_by_decision ON outbox (id_nat_decision, finess_eg, state, sequence);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE exchanges (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id bigint,
    idempotency_key text,
    kind text NOT NULL,
    method text NOT NULL,
    url text NOT NULL,
    finess_eg text,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration double precision NOT NULL,
    status integer,
    request_headers json NOT NULL,
    request_body text,
    response_headers json NOT NULL,
    response_body text,
    body_digest text,
    error text,
    worker text
);
CREATE INDEX exchanges_by_item ON exchanges (item_id);
CREATE INDEX exchanges_by_start ON exchanges (started_at);
