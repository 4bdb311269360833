package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/stretchr/testify/require"
)

func TestLiveService(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	live := postgres.NewLiveService(b.db)

	ok, err := live.LiveWorkerAvailable(ctx, 5*time.Second)
	require.NoError(t, err)
	require.False(t, ok)
	_, err = b.pool.Exec(ctx, `INSERT INTO workers (id, host, pid, device, engine, queues, state)
		VALUES ('w1', 'h', 1, 'cpu', 'e', '{live,final}', 'idle')`)
	require.NoError(t, err)
	ok, err = live.LiveWorkerAvailable(ctx, 5*time.Second)
	require.NoError(t, err)
	require.True(t, ok)

	newSession := func() uuid.UUID {
		id := uuid.New()
		s, err := live.CreateLiveSession(ctx, &asr.LiveSessionCreate{ID: id, Filename: "mic.wav", ClientAddr: "10.0.0.2:5000",
			Config: asr.LiveConfig{Mode: "online", AudioFS: 8000, ChunkSize: []int{0, 8, 4}, ChunkInterval: 10, ITN: true, Hotwords: "h"}})
		require.NoError(t, err)
		require.Equal(t, "open", s.State)
		require.Equal(t, []int{0, 8, 4}, s.ChunkSize)
		require.Positive(t, s.JobID)
		return id
	}
	id := newSession()
	_, err = live.CreateLiveSession(ctx, &asr.LiveSessionCreate{ID: id, Config: asr.LiveConfig{Mode: "2pass", ChunkSize: []int{5, 10, 5}}})
	require.Equal(t, asr.ECONFLICT, asr.ErrorCode(err))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'live'`))

	st, err := b.tasks.QueueStatus(ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, 1, st.Live)
	require.Equal(t, 1, st.Processing)

	require.NoError(t, live.AddLiveChunk(ctx, id, 0, make([]byte, asr.LiveChunkBytes), false))
	require.NoError(t, live.AddLiveChunk(ctx, id, 1, nil, true))
	require.NoError(t, live.EndLiveSession(ctx, &asr.LiveSessionEnd{ID: id, Chunks: 2, AudioKey: "live/x.wav", AudioSize: 19244, DurationS: 0.6}))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM live_sessions WHERE id = $1 AND state = 'ended' AND chunks = 2 AND ended_at IS NOT NULL`, id))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM transcriptions WHERE id = $1 AND audio_key = 'live/x.wav'
		AND audio_size = 19244 AND content_type = 'audio/wav' AND duration_s = 0.6`, id))
	require.Equal(t, 0, count(t, b.pool, `SELECT octet_length(pcm) FROM live_chunks WHERE session_id = $1 AND seq = 1 AND is_last`, id))

	// Worker loss.
	lost, err := live.LostLiveSessions(ctx, []uuid.UUID{id}, 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, lost, "no worker holds the session yet")

	_, err = b.pool.Exec(ctx, `UPDATE procrastinate_jobs SET status = 'succeeded' WHERE lock = $1`, "live:"+id.String())
	require.NoError(t, err)
	a, c := newSession(), newSession()
	// Worker w1 runs a's job (and says so in current_task), w2 runs c's.
	var pw1, pw2, job int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT worker_id FROM procrastinate_register_worker_v1()`).Scan(&pw1))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT worker_id FROM procrastinate_register_worker_v1()`).Scan(&pw2))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM procrastinate_fetch_job_v2(ARRAY['live'], $1)`, pw1).Scan(&job))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE id = $1 AND lock = $2`, job, "live:"+a.String()))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM procrastinate_fetch_job_v2(ARRAY['live'], $1)`, pw2).Scan(&job))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE id = $1 AND lock = $2`, job, "live:"+c.String()))
	_, err = b.pool.Exec(ctx, `UPDATE workers SET current_task = $1, state = 'busy', procrastinate_worker_id = $2 WHERE id = 'w1'`, a, pw1)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO workers (id, host, pid, device, engine, queues, state, procrastinate_worker_id)
		VALUES ('w2', 'h', 2, 'cpu', 'e', '{live}', 'busy', $1)`, pw2)
	require.NoError(t, err)
	all := []uuid.UUID{id, a, c}
	lost, err = live.LostLiveSessions(ctx, all, 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, lost)

	_, err = b.pool.Exec(ctx, `UPDATE workers SET last_heartbeat = now() - interval '1 minute' WHERE id = 'w1'`)
	require.NoError(t, err)
	lost, err = live.LostLiveSessions(ctx, all, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a}, lost)

	_, err = b.pool.Exec(ctx, `UPDATE workers SET state = 'gone' WHERE id = 'w2'`)
	require.NoError(t, err)
	lost, err = live.LostLiveSessions(ctx, all, 5*time.Second)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{a, c}, lost)

	// Procrastinate pruned the stalled worker: the running job has no worker.
	_, err = b.pool.Exec(ctx, `UPDATE workers SET state = 'busy' WHERE id = 'w2'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `DELETE FROM procrastinate_workers WHERE id = $1`, pw2)
	require.NoError(t, err)
	lost, err = live.LostLiveSessions(ctx, []uuid.UUID{c}, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{c}, lost)
}
