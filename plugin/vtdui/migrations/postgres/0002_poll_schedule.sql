-- 0002: the poll schedule of the inbound sync (vtdui.schedule.PostgresPollSchedule).
-- One row per configured establishment (FINESS EG): when it is due, which worker polls it and until when
-- (a lease: a dead worker's establishments are taken over once it expires), and how its last polls went.
-- No health data: last_error is a short technical reason.

CREATE TABLE IF NOT EXISTS poll_schedule (
    finess_eg TEXT PRIMARY KEY,
    finess_ej TEXT NOT NULL,
    next_due_at TIMESTAMPTZ NOT NULL,
    locked_by TEXT,
    locked_until TIMESTAMPTZ,
    last_started_at TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_success_at TIMESTAMPTZ,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX IF NOT EXISTS poll_schedule_due ON poll_schedule (next_due_at);
CREATE INDEX IF NOT EXISTS poll_schedule_entity_lease ON poll_schedule (finess_ej, locked_until);
