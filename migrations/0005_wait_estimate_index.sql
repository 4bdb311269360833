-- The submit path estimates the queue wait from the most recently finished files; without this
-- index that was a scan and sort of the whole history on every upload.
CREATE INDEX transcriptions_recent_done_idx ON transcriptions (finished_at DESC) WHERE status = 'done';
