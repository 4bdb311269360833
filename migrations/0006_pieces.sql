-- Long files in pieces (issue 5, item 3). A file longer than the worker's ASR_SPLIT_MINUTES is cut
-- at silences into pieces; each piece is its own `asr.transcribe_piece` job in queue `batch`, so
-- every batch worker on the LAN takes some, and the worker that finishes the last piece merges them
-- into the transcription (segments in order, times offset by the piece's start).
--
-- A split belongs to one attempt of its transcription (`generation` = transcriptions.attempts when
-- it was made): a later attempt (a retry, or a recovered splitting job) replaces the pieces, and a
-- piece job of an older generation finds nothing to do.

CREATE TABLE transcription_pieces (
    task_id uuid NOT NULL REFERENCES transcriptions (id) ON DELETE CASCADE,
    idx integer NOT NULL CHECK (idx >= 0),
    generation integer NOT NULL,
    -- The piece's range in the decoded 16 kHz mono audio: [start_sample, end_sample).
    start_sample bigint NOT NULL CHECK (start_sample >= 0),
    end_sample bigint NOT NULL,
    start_s double precision GENERATED ALWAYS AS (start_sample / 16000.0) STORED,
    end_s double precision GENERATED ALWAYS AS (end_sample / 16000.0) STORED,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'canceled')),
    progress real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    -- Started this many times (a piece whose worker died is retried by stalled-job recovery); only
    -- the current attempt may store its result.
    attempts integer NOT NULL DEFAULT 0,
    worker text,
    job_id bigint REFERENCES procrastinate_jobs (id) ON DELETE SET NULL,
    -- The piece's result; segment times are relative to the piece's start: [[start_s, end_s, text], ...].
    text text NOT NULL DEFAULT '',
    segments jsonb NOT NULL DEFAULT '[]',
    language text,
    model text,
    engine text,
    engine_s double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (task_id, idx),
    CHECK (end_sample > start_sample)
);

-- When a split transcription is canceled, fails, or is deleted, its unfinished pieces stop: waiting
-- piece jobs are cancelled (deleted, when the transcription is), running ones are asked to abort,
-- and the piece rows say so. Whoever changes the transcription (the gateway, a worker, someone with
-- SQL) gets this, in the same transaction.
CREATE FUNCTION asr_stop_pieces() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM procrastinate_cancel_job_v1(p.job_id, true, TG_OP = 'DELETE')
       FROM transcription_pieces p
      WHERE p.task_id = OLD.id AND p.job_id IS NOT NULL AND p.status IN ('queued', 'running');
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    UPDATE transcription_pieces SET status = 'canceled'
     WHERE task_id = OLD.id AND status IN ('queued', 'running');
    RETURN NULL;
END;
$$;

CREATE TRIGGER transcriptions_stop_pieces
    AFTER UPDATE OF status ON transcriptions
    FOR EACH ROW
    WHEN (NEW.status IN ('canceled', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION asr_stop_pieces();

-- BEFORE: the pieces (and their job ids) are still there; the cascade removes them afterwards.
CREATE TRIGGER transcriptions_stop_pieces_on_delete
    BEFORE DELETE ON transcriptions
    FOR EACH ROW EXECUTE FUNCTION asr_stop_pieces();

REVOKE EXECUTE ON FUNCTION asr_stop_pieces() FROM PUBLIC;

-- Roles (see 0004): the worker splits, claims, finishes and merges pieces; the gateway's cancel and
-- delete run the trigger above, which reads and updates piece rows. Readers get nothing here.
GRANT SELECT, INSERT, UPDATE, DELETE ON transcription_pieces TO asr_worker;
GRANT SELECT, UPDATE ON transcription_pieces TO asr_gateway;
