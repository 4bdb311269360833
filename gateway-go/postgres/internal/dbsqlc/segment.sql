-- name: SegmentListByTask :many
SELECT *
FROM segments
WHERE transcription_id = @transcription_id
ORDER BY idx;

-- name: SegmentDeleteByTask :exec
DELETE FROM segments
WHERE transcription_id = @transcription_id;
