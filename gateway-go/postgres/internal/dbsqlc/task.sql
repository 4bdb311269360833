-- name: TaskInsert :one
INSERT INTO transcriptions (
    id, kind, status, filename, audio_key, audio_size, content_type,
    language_requested, hotwords, priority, job_id
) VALUES (
    @id, 'file', 'queued', @filename, @audio_key, @audio_size, @content_type,
    sqlc.narg('language_requested'), @hotwords, @priority, @job_id
)
RETURNING *;

-- name: TaskGetByID :one
SELECT *
FROM transcriptions
WHERE id = @id;

-- name: TaskGetByIDForUpdate :one
SELECT *
FROM transcriptions
WHERE id = @id
FOR UPDATE;

-- name: TaskList :many
SELECT *
FROM transcriptions
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
  AND (sqlc.narg('pattern')::text IS NULL
       OR text ILIKE sqlc.narg('pattern')::text
       OR filename ILIKE sqlc.narg('pattern')::text)
  AND (sqlc.narg('created_from')::timestamptz IS NULL OR created_at >= sqlc.narg('created_from')::timestamptz)
  AND (sqlc.narg('created_to')::timestamptz IS NULL OR created_at < sqlc.narg('created_to')::timestamptz)
ORDER BY created_at DESC, id DESC
LIMIT @max OFFSET @skip;

-- name: TaskCount :one
SELECT count(*)
FROM transcriptions
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
  AND (sqlc.narg('pattern')::text IS NULL
       OR text ILIKE sqlc.narg('pattern')::text
       OR filename ILIKE sqlc.narg('pattern')::text)
  AND (sqlc.narg('created_from')::timestamptz IS NULL OR created_at >= sqlc.narg('created_from')::timestamptz)
  AND (sqlc.narg('created_to')::timestamptz IS NULL OR created_at < sqlc.narg('created_to')::timestamptz);

-- name: TaskCountByStatus :many
SELECT status, count(*) AS count
FROM transcriptions
GROUP BY status;

-- name: TaskResetForRetry :one
UPDATE transcriptions
SET status = 'queued',
    progress = 0,
    error = NULL,
    text = '',
    language = NULL,
    duration_s = NULL,
    model = NULL,
    engine = NULL,
    worker = NULL,
    rtf = NULL,
    engine_s = NULL,
    started_at = NULL,
    finished_at = NULL,
    job_id = @job_id
WHERE id = @id
RETURNING *;

-- name: TaskSetCanceled :one
UPDATE transcriptions
SET status = 'canceled',
    finished_at = now()
WHERE id = @id
RETURNING *;

-- name: TaskDelete :exec
DELETE FROM transcriptions
WHERE id = @id;

-- name: TaskWaitEstimate :one
-- The inputs of a queue-wait estimate in one round trip, each from an index: the mean wall time
-- of the 20 most recently finished files, the files being transcribed now, and the batch slots
-- of the active workers.
SELECT
    coalesce((
        SELECT avg(extract(epoch FROM (finished_at - started_at)))
        FROM (
            SELECT started_at, finished_at
            FROM transcriptions
            WHERE status = 'done' AND kind = 'file' AND started_at IS NOT NULL AND finished_at IS NOT NULL
            ORDER BY finished_at DESC
            LIMIT 20
        ) recent
    ), 0)::double precision AS avg_seconds,
    (SELECT count(*) FROM transcriptions WHERE status = 'processing' AND kind = 'file')::bigint AS running,
    (
        SELECT coalesce(sum(greatest(concurrency, 1)), 0)
        FROM workers
        WHERE state IN ('idle', 'busy')
          AND 'batch' = ANY (queues)
          AND last_heartbeat > now() - make_interval(secs => @timeout_s::double precision)
    )::bigint AS slots;

-- name: TaskInsertLive :one
INSERT INTO transcriptions (
    id, kind, status, filename, hotwords, job_id, started_at
) VALUES (
    @id, 'live', 'processing', @filename, @hotwords, @job_id, now()
)
RETURNING *;

-- name: TaskSetLiveAudio :exec
UPDATE transcriptions
SET audio_key = @audio_key,
    audio_size = @audio_size,
    content_type = 'audio/wav',
    duration_s = @duration_s
WHERE id = @id;
