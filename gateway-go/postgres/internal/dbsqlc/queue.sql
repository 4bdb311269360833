-- name: QueueDeferTranscribe :one
SELECT (procrastinate_defer_jobs_v1(ARRAY[
    ROW(
        'batch',
        'asr.transcribe_file',
        sqlc.arg('priority')::integer,
        sqlc.arg('lock')::text,
        sqlc.arg('lock')::text,
        jsonb_build_object('task_id', sqlc.arg('task_id')::text),
        NULL::timestamptz
    )::procrastinate_job_to_defer_v1
]))[1]::bigint AS job_id;

-- name: QueueCancelJob :one
-- Cancels a job that has not started; with abort, also asks a running one to abort.
-- Returns the job id, or 0 when the job was in neither state.
SELECT coalesce(procrastinate_cancel_job_v1(@job_id::bigint, @abort::boolean, false), 0)::bigint AS job_id;

-- name: QueuePosition :one
-- The job's 1-based place among waiting jobs of its queue, in fetch order (0 when not waiting).
SELECT count(*) AS position
FROM procrastinate_jobs j
JOIN procrastinate_jobs me ON me.id = @job_id::bigint
WHERE me.status = 'todo'
  AND j.status = 'todo'
  AND j.queue_name = me.queue_name
  AND (j.priority > me.priority OR (j.priority = me.priority AND j.id <= me.id));

-- name: QueueJobsForTask :many
SELECT id, status::text AS status
FROM procrastinate_jobs
WHERE task_name = 'asr.transcribe_file'
  AND args->>'task_id' = sqlc.arg('task_id')::text
ORDER BY id;

-- name: QueueDeleteJob :exec
DELETE FROM procrastinate_jobs
WHERE id = @job_id::bigint
  AND status <> 'doing';

-- name: QueueDeferLiveSession :one
SELECT (procrastinate_defer_jobs_v1(ARRAY[
    ROW(
        'live',
        'asr.live_session',
        40,
        sqlc.arg('lock')::text,
        sqlc.arg('lock')::text,
        jsonb_build_object('session_id', sqlc.arg('session_id')::text),
        NULL::timestamptz
    )::procrastinate_job_to_defer_v1
]))[1]::bigint AS job_id;

-- name: QueueDepthByQueue :many
-- Waiting jobs per queue, for /metrics.
SELECT queue_name, count(*)::bigint AS depth
FROM procrastinate_jobs
WHERE status = 'todo'
GROUP BY queue_name
ORDER BY queue_name;
