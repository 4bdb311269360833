package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/stretchr/testify/require"
)

func TestMigrate(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	type testBundle struct {
		url string
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{url: dbtest.NewEmptyDatabase(t)}
	}

	queryStrings := func(t *testing.T, url, sql string, args ...any) []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, sql, args...)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}

	t.Run("AppliesToEmptyDatabaseAndIsIdempotent", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		res, err := postgres.Migrate(ctx, bundle.url, t.Logf)
		require.NoError(t, err)
		require.Equal(t, int32(0), res.From)
		require.Equal(t, res.Latest, res.To)
		require.GreaterOrEqual(t, res.Latest, int32(2))

		res, err = postgres.Migrate(ctx, bundle.url, nil)
		require.NoError(t, err)
		require.Equal(t, res.To, res.From)
	})

	t.Run("SchemaMatchesWhatTheCodeExpects", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := postgres.Migrate(ctx, bundle.url, nil)
		require.NoError(t, err)

		tables := queryStrings(t, bundle.url, `SELECT table_name::text FROM information_schema.tables
			WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`)
		require.Subset(t, tables, []string{
			"procrastinate_events", "procrastinate_jobs", "procrastinate_periodic_defers",
			"procrastinate_workers", "schema_version", "segments", "transcriptions", "workers",
			"live_sessions", "live_chunks", "live_sentences",
		})

		chunkCols := queryStrings(t, bundle.url, `SELECT column_name::text FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = 'live_chunks' ORDER BY ordinal_position`)
		require.Equal(t, []string{"session_id", "seq", "pcm", "is_last", "received_at"}, chunkCols)

		views := queryStrings(t, bundle.url, `SELECT table_name::text FROM information_schema.views
			WHERE table_schema = 'public' ORDER BY 1`)
		require.Equal(t, []string{"history", "history_segments"}, views)

		historyCols := queryStrings(t, bundle.url, `SELECT column_name::text FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = 'history' ORDER BY ordinal_position`)
		require.Equal(t, []string{"task_id", "kind", "status", "filename", "language", "model",
			"duration_s", "text", "worker", "created_at", "finished_at"}, historyCols)

		segCols := queryStrings(t, bundle.url, `SELECT column_name::text FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = 'history_segments' ORDER BY ordinal_position`)
		require.Equal(t, []string{"task_id", "idx", "start_s", "end_s", "text"}, segCols)

		funcs := queryStrings(t, bundle.url, `SELECT proname::text FROM pg_proc p
			JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1`)
		require.Subset(t, funcs, []string{
			"procrastinate_defer_jobs_v1", "procrastinate_cancel_job_v1", "procrastinate_fetch_job_v2",
			"procrastinate_retry_job_v2", "asr_notify_transcription", "asr_notify_worker",
			"asr_notify_live_chunk",
		})

		triggers := queryStrings(t, bundle.url, `SELECT DISTINCT trigger_name::text FROM information_schema.triggers
			WHERE event_object_table IN ('transcriptions', 'workers', 'live_chunks') ORDER BY 1`)
		require.Subset(t, triggers, []string{"transcriptions_notify_insert", "transcriptions_notify_update",
			"workers_notify_insert", "workers_notify_update", "live_chunks_notify"})

		exts := queryStrings(t, bundle.url, `SELECT extname::text FROM pg_extension ORDER BY 1`)
		require.Contains(t, exts, "pg_trgm")
	})
}
