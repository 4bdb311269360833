-- Transcriptions, their segments and the worker registry: the project's own schema.
-- The notify triggers are the only path by which progress reaches the gateway (channel asr_events).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE transcriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'live')),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'processing', 'done', 'failed', 'canceled')),
    filename text NOT NULL DEFAULT '',
    -- Server-generated key relative to the audio store root; never a client path.
    audio_key text,
    audio_size bigint,
    content_type text,
    -- What the client asked for: NULL means detect.
    language_requested text,
    hotwords text NOT NULL DEFAULT '',
    priority integer NOT NULL DEFAULT 0,
    -- Fraction done, 0..1.
    progress real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    text text NOT NULL DEFAULT '',
    language text,
    duration_s double precision,
    model text,
    engine text,
    worker text,
    -- Engine seconds over audio seconds, and the engine's own seconds.
    rtf double precision,
    engine_s double precision,
    error text,
    job_id bigint REFERENCES procrastinate_jobs (id) ON DELETE SET NULL,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX transcriptions_created_at_idx ON transcriptions (created_at DESC);
CREATE INDEX transcriptions_status_idx ON transcriptions (status);
CREATE INDEX transcriptions_queue_idx ON transcriptions (priority DESC, created_at) WHERE status = 'queued';
-- Substring search (ILIKE) for Chinese and English alike: trigrams need no word segmentation.
CREATE INDEX transcriptions_text_trgm_idx ON transcriptions USING gin (text gin_trgm_ops);
CREATE INDEX transcriptions_filename_trgm_idx ON transcriptions USING gin (filename gin_trgm_ops);

CREATE TABLE segments (
    transcription_id uuid NOT NULL REFERENCES transcriptions (id) ON DELETE CASCADE,
    idx integer NOT NULL CHECK (idx >= 0),
    start_s double precision NOT NULL CHECK (start_s >= 0),
    end_s double precision NOT NULL,
    text text NOT NULL,
    PRIMARY KEY (transcription_id, idx),
    CHECK (end_s >= start_s)
);

CREATE INDEX segments_text_trgm_idx ON segments USING gin (text gin_trgm_ops);

CREATE TABLE workers (
    -- "<host>-<pid>-<random>": unique per process, stable for its life.
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    device text NOT NULL,
    engine text NOT NULL,
    queues text[] NOT NULL,
    models jsonb NOT NULL DEFAULT '{}',
    concurrency integer NOT NULL DEFAULT 1,
    state text NOT NULL DEFAULT 'starting'
        CHECK (state IN ('starting', 'idle', 'busy', 'stopping', 'gone', 'error')),
    current_task uuid,
    jobs_done integer NOT NULL DEFAULT 0,
    avg_rtf double precision,
    procrastinate_worker_id bigint,
    version text NOT NULL DEFAULT '',
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workers_last_heartbeat_idx ON workers (last_heartbeat DESC);

CREATE FUNCTION asr_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER transcriptions_touch_updated_at
    BEFORE UPDATE ON transcriptions
    FOR EACH ROW EXECUTE FUNCTION asr_touch_updated_at();

CREATE FUNCTION asr_notify_transcription() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r transcriptions;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    PERFORM pg_notify('asr_events', json_build_object(
        'type', 'task',
        'op', lower(TG_OP),
        'task_id', r.id,
        'kind', r.kind,
        'status', CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE r.status END,
        'progress', r.progress
    )::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER transcriptions_notify_insert
    AFTER INSERT OR DELETE ON transcriptions
    FOR EACH ROW EXECUTE FUNCTION asr_notify_transcription();

CREATE TRIGGER transcriptions_notify_update
    AFTER UPDATE ON transcriptions
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
    EXECUTE FUNCTION asr_notify_transcription();

CREATE FUNCTION asr_notify_worker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('asr_events', json_build_object(
        'type', 'worker',
        'worker_id', NEW.id,
        'state', NEW.state,
        'current_task', NEW.current_task
    )::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER workers_notify_insert
    AFTER INSERT ON workers
    FOR EACH ROW EXECUTE FUNCTION asr_notify_worker();

CREATE TRIGGER workers_notify_update
    AFTER UPDATE ON workers
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.current_task IS DISTINCT FROM NEW.current_task)
    EXECUTE FUNCTION asr_notify_worker();

-- Pinned views for people who query history with SQL (see README "SQL over history").
CREATE VIEW history AS
SELECT
    t.id AS task_id,
    t.kind,
    t.status,
    t.filename,
    t.language,
    t.model,
    t.duration_s,
    t.text,
    t.worker,
    t.created_at,
    t.finished_at
FROM transcriptions t;

CREATE VIEW history_segments AS
SELECT
    s.transcription_id AS task_id,
    s.idx,
    s.start_s,
    s.end_s,
    s.text
FROM segments s;
