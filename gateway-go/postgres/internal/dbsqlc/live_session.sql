-- name: LiveSessionInsert :one
INSERT INTO live_sessions (
    id, mode, wav_name, audio_fs, chunk_size, chunk_interval, hotwords, itn, client_addr
) VALUES (
    @id, @mode, @wav_name, @audio_fs, @chunk_size::integer[], @chunk_interval, @hotwords, @itn, @client_addr
)
RETURNING *;

-- name: LiveSessionEnd :exec
-- The client sent is_speaking=false or went away: no more chunks will come.
UPDATE live_sessions
SET state = 'ended',
    ended_at = now(),
    chunks = @chunks
WHERE id = @id
  AND state = 'open';

-- name: LiveSessionCountOpen :one
SELECT count(*) AS open
FROM live_sessions
WHERE state = 'open';

-- name: LiveSessionListLost :many
-- Those of the given sessions whose worker stopped: a workers row claims the session (current_task)
-- or its running job (procrastinate_worker_id) and none of those rows is alive; or the running job's
-- Procrastinate worker is stale or was pruned.
SELECT s.id::uuid AS session_id
FROM unnest(@session_ids::uuid[]) AS s (id)
LEFT JOIN procrastinate_jobs j
    ON j.lock = 'live:' || s.id::text AND j.status = 'doing'
WHERE (
        EXISTS (
            SELECT 1 FROM workers w
            WHERE w.current_task = s.id
               OR (j.worker_id IS NOT NULL AND w.procrastinate_worker_id = j.worker_id))
        AND NOT EXISTS (
            SELECT 1 FROM workers w
            WHERE (w.current_task = s.id
                   OR (j.worker_id IS NOT NULL AND w.procrastinate_worker_id = j.worker_id))
              AND w.state NOT IN ('gone', 'error')
              AND w.last_heartbeat > now() - make_interval(secs => @timeout_s::double precision))
    )
    OR (j.id IS NOT NULL AND (
        j.worker_id IS NULL
        OR EXISTS (
            SELECT 1 FROM procrastinate_workers pw
            WHERE pw.id = j.worker_id
              AND pw.last_heartbeat < now() - make_interval(secs => @timeout_s::double precision))));
