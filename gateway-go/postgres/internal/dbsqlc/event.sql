-- name: EventListen :exec
-- Subscribes this connection to the channel the notify triggers write to.
LISTEN asr_events;

-- name: CaptionListen :exec
-- Subscribes this connection to the live captions workers send.
LISTEN asr_captions;
