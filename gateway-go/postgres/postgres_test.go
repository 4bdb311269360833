package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	db      *postgres.DB
	pool    *pgxpool.Pool
	tasks   *postgres.TaskService
	workers *postgres.WorkerService
	url     string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	url := dbtest.NewDatabase(t)
	db, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return &testBundle{
		db: db, pool: db.Pool, url: url,
		tasks:   postgres.NewTaskService(db),
		workers: postgres.NewWorkerService(db),
	}
}

func newCreate(priority int) *asr.TaskCreate {
	id := uuid.New()
	return &asr.TaskCreate{
		ID: id, Filename: "a.wav", AudioKey: asr.AudioKey(id, "wav", time.Now()),
		AudioSize: 10, ContentType: "audio/wav", Priority: priority,
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestTaskService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CreateTaskInsertsRowAndJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		c := newCreate(3)
		c.LanguageRequested = "zh"
		receipt, err := b.tasks.CreateTask(ctx, c)
		require.NoError(t, err)
		require.Equal(t, asr.StatusQueued, receipt.Task.Status)
		require.Equal(t, 1, receipt.Position)
		require.NotNil(t, receipt.Task.JobID)

		var queue, task, lock, qlock, argID string
		var prio int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT queue_name, task_name, lock, queueing_lock, args->>'task_id', priority
			FROM procrastinate_jobs WHERE id = $1 AND status = 'todo'`, *receipt.Task.JobID).
			Scan(&queue, &task, &lock, &qlock, &argID, &prio))
		require.Equal(t, "batch", queue)
		require.Equal(t, "asr.transcribe_file", task)
		require.Equal(t, "task:"+c.ID.String(), lock)
		require.Equal(t, lock, qlock)
		require.Equal(t, c.ID.String(), argID)
		require.Equal(t, 3, prio)
		require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM transcriptions WHERE id = $1 AND language_requested = 'zh'`, c.ID))
	})

	t.Run("CreateTaskRejectsBadPriority", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tasks.CreateTask(ctx, newCreate(11))
		require.Equal(t, asr.EINVALID, asr.ErrorCode(err))
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs`))
	})

	t.Run("PositionFollowsFetchOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		low, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		high, err := b.tasks.CreateTask(ctx, newCreate(5))
		require.NoError(t, err)
		require.Equal(t, 1, high.Position)

		got, err := b.tasks.FindTaskByID(ctx, low.Task.ID)
		require.NoError(t, err)
		require.Equal(t, 2, got.Position)
	})

	t.Run("FindTaskByIDNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tasks.FindTaskByID(ctx, uuid.New())
		require.Equal(t, asr.ENOTFOUND, asr.ErrorCode(err))
	})

	t.Run("FindTasksSearchesChineseAndEscapesWildcards", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, text := range []string{"广州市房地产中介协会分析", "欢迎大家来体验达摩院推出的语音识别模型", "100% sure_thing", "100 percent surely"} {
			r, err := b.tasks.CreateTask(ctx, newCreate(0))
			require.NoError(t, err)
			_, err = b.pool.Exec(ctx, `UPDATE transcriptions SET status = 'done', text = $2, finished_at = now() WHERE id = $1`, r.Task.ID, text)
			require.NoError(t, err)
		}
		tasks, total, err := b.tasks.FindTasks(ctx, asr.TaskFilter{Query: "房地产", Limit: 20})
		require.NoError(t, err)
		require.Equal(t, 1, total)
		require.Equal(t, "广州市房地产中介协会分析", tasks[0].Text)

		_, total, err = b.tasks.FindTasks(ctx, asr.TaskFilter{Query: "100%", Limit: 20})
		require.NoError(t, err)
		require.Equal(t, 1, total)
		_, total, err = b.tasks.FindTasks(ctx, asr.TaskFilter{Query: "e_t", Limit: 20})
		require.NoError(t, err)
		require.Equal(t, 1, total)

		tasks, total, err = b.tasks.FindTasks(ctx, asr.TaskFilter{Status: asr.StatusDone, Limit: 2, Offset: 1})
		require.NoError(t, err)
		require.Equal(t, 4, total)
		require.Len(t, tasks, 2)

		_, _, err = b.tasks.FindTasks(ctx, asr.TaskFilter{Limit: 0})
		require.Equal(t, asr.EINVALID, asr.ErrorCode(err))
	})

	t.Run("CancelQueuedCancelsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		task, err := b.tasks.CancelTask(ctx, r.Task.ID)
		require.NoError(t, err)
		require.Equal(t, asr.StatusCanceled, task.Status)
		require.NotNil(t, task.FinishedAt)
		require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE id = $1 AND status = 'cancelled'`, *r.Task.JobID))

		_, err = b.tasks.CancelTask(ctx, r.Task.ID)
		require.Equal(t, asr.ECONFLICT, asr.ErrorCode(err))
	})

	t.Run("CancelProcessingRequestsAbort", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		// Simulate a worker that fetched the job and started.
		_, err = b.pool.Exec(ctx, `UPDATE procrastinate_jobs SET status = 'doing' WHERE id = $1`, *r.Task.JobID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `UPDATE transcriptions SET status = 'processing', started_at = now() WHERE id = $1`, r.Task.ID)
		require.NoError(t, err)

		task, err := b.tasks.CancelTask(ctx, r.Task.ID)
		require.NoError(t, err)
		require.Equal(t, asr.StatusCanceled, task.Status)
		require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE id = $1 AND abort_requested AND status = 'doing'`, *r.Task.JobID))
	})

	t.Run("RetryOnlyFailedOrCanceled", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		_, err = b.tasks.RetryTask(ctx, r.Task.ID)
		require.Equal(t, asr.ECONFLICT, asr.ErrorCode(err))

		// Simulate a worker failing the task, with a partial segment left over.
		_, err = b.pool.Exec(ctx, `UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = $1`, *r.Task.JobID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `UPDATE transcriptions SET status = 'failed', error = 'boom', text = 'x', finished_at = now() WHERE id = $1`, r.Task.ID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO segments (transcription_id, idx, start_s, end_s, text) VALUES ($1, 0, 0, 1, 'x')`, r.Task.ID)
		require.NoError(t, err)

		task, err := b.tasks.RetryTask(ctx, r.Task.ID)
		require.NoError(t, err)
		require.Equal(t, asr.StatusQueued, task.Status)
		require.Empty(t, task.Error)
		require.Empty(t, task.Text)
		require.Nil(t, task.FinishedAt)
		require.NotEqual(t, *r.Task.JobID, *task.JobID)
		require.Equal(t, 1, task.Position)
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM segments WHERE transcription_id = $1`, r.Task.ID))
		require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs WHERE id = $1 AND status = 'todo'`, *task.JobID))

		_, err = b.tasks.RetryTask(ctx, uuid.New())
		require.Equal(t, asr.ENOTFOUND, asr.ErrorCode(err))
	})

	t.Run("DeleteRemovesRowSegmentsAndJobs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO segments (transcription_id, idx, start_s, end_s, text) VALUES ($1, 0, 0, 1, 'x')`, r.Task.ID)
		require.NoError(t, err)

		task, err := b.tasks.DeleteTask(ctx, r.Task.ID)
		require.NoError(t, err)
		require.Equal(t, r.Task.AudioKey, task.AudioKey)
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM transcriptions`))
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM segments`))
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM procrastinate_jobs`))

		_, err = b.tasks.DeleteTask(ctx, r.Task.ID)
		require.Equal(t, asr.ENOTFOUND, asr.ErrorCode(err))
	})

	t.Run("QueueStatusCounts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		_, err = b.tasks.CancelTask(ctx, r.Task.ID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO workers (id, host, pid, device, engine, queues, state) VALUES
			('w1', 'h', 1, 'cpu', 'offline', '{batch}', 'busy'),
			('w2', 'h', 2, 'cpu', 'offline', '{batch}', 'gone')`)
		require.NoError(t, err)

		st, err := b.tasks.QueueStatus(ctx, 15*time.Second)
		require.NoError(t, err)
		require.Equal(t, asr.QueueStatus{Queued: 1, Canceled: 1, Workers: 1, WorkersBusy: 1}, *st)
	})
}

func TestWorkerService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ActiveFromHeartbeat", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.pool.Exec(ctx, `INSERT INTO workers (id, host, pid, device, engine, queues, models, state, last_heartbeat) VALUES
			('fresh', 'master', 1, 'cuda', 'funasr', '{batch,live}', '{"asr":"paraformer-zh"}', 'idle', now()),
			('stale', 'laptop', 2, 'cpu', 'offline', '{batch}', '{}', 'idle', now() - interval '1 minute'),
			('gone', 'laptop', 3, 'cpu', 'offline', '{batch}', '{}', 'gone', now())`)
		require.NoError(t, err)

		workers, err := b.workers.FindWorkers(ctx, 15*time.Second)
		require.NoError(t, err)
		require.Len(t, workers, 3)
		active := map[string]bool{}
		for _, w := range workers {
			active[w.ID] = w.Active
		}
		require.Equal(t, map[string]bool{"fresh": true, "stale": false, "gone": false}, active)
	})
}

func TestListener(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("FansOutTaskEvents", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l, err := postgres.NewListener(b.url, nil)
		require.NoError(t, err)
		l.Start(ctx)
		t.Cleanup(l.Close)
		sub1, sub2 := l.Subscribe(), l.Subscribe()
		defer sub1.Close()
		defer sub2.Close()
		select {
		case <-l.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("listener not ready")
		}

		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		for _, sub := range []asr.Subscription{sub1, sub2} {
			select {
			case ev := <-sub.C():
				require.Equal(t, asr.EventTypeTask, ev.Type)
				require.Equal(t, r.Task.ID.String(), ev.TaskID)
				require.Contains(t, string(ev.Payload), `"insert"`)
			case <-time.After(10 * time.Second):
				t.Fatal("no event")
			}
		}
	})

	t.Run("DropsForSlowSubscriber", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l, err := postgres.NewListener(b.url, nil)
		require.NoError(t, err)
		l.BufferSize = 1
		l.Start(ctx)
		t.Cleanup(l.Close)
		slow := l.Subscribe()
		defer slow.Close()
		<-l.Ready()

		for range 3 {
			_, err := b.tasks.CreateTask(ctx, newCreate(0))
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return l.Dropped() >= 2 }, 10*time.Second, 10*time.Millisecond)
		require.Len(t, slow.C(), 1)
	})

	t.Run("ReconnectsAfterConnectionLoss", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l, err := postgres.NewListener(b.url, nil)
		require.NoError(t, err)
		l.MinBackoff = 10 * time.Millisecond
		l.Start(ctx)
		t.Cleanup(l.Close)
		sub := l.Subscribe()
		defer sub.Close()
		<-l.Ready()

		// Kill the LISTEN connection from the server side.
		var killed int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, postgres.ListenerApplicationName).Scan(&killed))
		require.Equal(t, 1, killed)
		require.Eventually(t, func() bool { return l.Connects() >= 2 && l.Connected() }, 10*time.Second, 10*time.Millisecond)

		r, err := b.tasks.CreateTask(ctx, newCreate(0))
		require.NoError(t, err)
		select {
		case ev := <-sub.C():
			require.Equal(t, r.Task.ID.String(), ev.TaskID)
		case <-time.After(10 * time.Second):
			t.Fatal("no event after reconnect")
		}
	})
}

func TestEscapeLike(t *testing.T) {
	t.Parallel()
	require.Equal(t, `100\% a\_b \\`, postgres.EscapeLike(`100% a_b \`))
}
