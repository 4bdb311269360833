-- name: EventListen :exec
-- Subscribes this connection to the channel the notify triggers write to.
LISTEN asr_events;
