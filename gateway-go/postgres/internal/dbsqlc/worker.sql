-- name: WorkerList :many
SELECT sqlc.embed(workers),
       (state IN ('idle', 'busy') AND last_heartbeat > now() - make_interval(secs => @timeout_s::double precision))::boolean AS active
FROM workers
ORDER BY last_heartbeat DESC, id;

-- name: WorkerCountActive :one
SELECT count(*) AS workers,
       count(*) FILTER (WHERE state = 'busy') AS workers_busy
FROM workers
WHERE state IN ('idle', 'busy')
  AND last_heartbeat > now() - make_interval(secs => @timeout_s::double precision);

-- name: WorkerActiveEngines :many
SELECT DISTINCT engine
FROM workers
WHERE state IN ('idle', 'busy')
  AND last_heartbeat > now() - make_interval(secs => @timeout_s::double precision)
ORDER BY engine;

-- name: WorkerLiveAvailable :one
-- Whether an active worker serves queue live.
SELECT EXISTS (
    SELECT 1
    FROM workers
    WHERE 'live' = ANY (queues)
      AND state IN ('idle', 'busy')
      AND last_heartbeat > now() - make_interval(secs => @timeout_s::double precision)
)::boolean AS available;
