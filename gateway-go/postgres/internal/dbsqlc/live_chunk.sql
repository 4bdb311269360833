-- name: LiveChunkInsert :exec
INSERT INTO live_chunks (session_id, seq, pcm, is_last)
VALUES (@session_id, @seq, @pcm, @is_last);
