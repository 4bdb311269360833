package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/postgres/internal/dbsqlc"
)

// Ensure the interface is implemented.
var (
	_ asr.TaskService    = (*TaskService)(nil)
	_ asr.MetricsService = (*TaskService)(nil)
)

// defaultJobSeconds is the wait estimate per job before any job has finished.
const defaultJobSeconds = 10.0

// TaskService implements asr.TaskService on PostgreSQL and Procrastinate.
type TaskService struct {
	db *DB
	// WorkerTimeout is how recent a worker's heartbeat must be for it to
	// count in wait estimates.
	WorkerTimeout time.Duration
}

// NewTaskService returns a TaskService on db.
func NewTaskService(db *DB) *TaskService {
	return &TaskService{db: db, WorkerTimeout: 15 * time.Second}
}

// CreateTask inserts the row and defers its asr.transcribe_file job in one
// transaction, so a row exists iff its job does. Returns EINVALID for bad
// input and ECONFLICT when the id is taken.
func (s *TaskService) CreateTask(ctx context.Context, c *asr.TaskCreate) (*asr.SubmitReceipt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var row dbsqlc.Transcription
	err := s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		jobID, err := deferTranscribe(ctx, q, c.ID, c.Priority)
		if err != nil {
			return err
		}
		row, err = q.TaskInsert(ctx, dbsqlc.TaskInsertParams{
			ID:                c.ID,
			Filename:          c.Filename,
			AudioKey:          &c.AudioKey,
			AudioSize:         &c.AudioSize,
			ContentType:       nonEmpty(c.ContentType),
			LanguageRequested: nonEmpty(c.LanguageRequested),
			Hotwords:          c.Hotwords,
			Priority:          int32(c.Priority),
			JobID:             &jobID,
		})
		return err
	})
	if isUniqueViolation(err) {
		return nil, asr.Errorf(asr.ECONFLICT, "Task %s already exists.", c.ID)
	} else if err != nil {
		return nil, wrapErr(err)
	}
	task := toTask(row)
	if err := s.attachPosition(ctx, task); err != nil {
		return nil, err
	}
	wait, err := s.estimateWait(ctx, task.Position)
	if err != nil {
		return nil, err
	}
	return &asr.SubmitReceipt{Task: task, Position: task.Position, EstimatedWait: wait}, nil
}

func deferTranscribe(ctx context.Context, q *dbsqlc.Queries, id uuid.UUID, priority int) (int64, error) {
	return q.QueueDeferTranscribe(ctx, dbsqlc.QueueDeferTranscribeParams{
		Priority: int32(priority),
		Lock:     "task:" + id.String(),
		TaskID:   id.String(),
	})
}

// FindTaskByID returns the task with its segments and queue position.
// Returns ENOTFOUND.
func (s *TaskService) FindTaskByID(ctx context.Context, id uuid.UUID) (*asr.Task, error) {
	q := s.db.queries()
	row, err := q.TaskGetByID(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, asr.Errorf(asr.ENOTFOUND, "Task %s not found.", id)
	} else if err != nil {
		return nil, wrapErr(err)
	}
	task := toTask(row)
	segs, err := q.SegmentListByTask(ctx, id)
	if err != nil {
		return nil, wrapErr(err)
	}
	task.Segments = make([]*asr.Segment, 0, len(segs))
	for _, sg := range segs {
		task.Segments = append(task.Segments, &asr.Segment{
			Index: int(sg.Idx), StartS: sg.StartS, EndS: sg.EndS, Text: sg.Text,
		})
	}
	if err := s.attachPosition(ctx, task); err != nil {
		return nil, err
	}
	return task, nil
}

// FindTasks returns matching tasks, newest first, and the number of matches.
// Returns EINVALID for an out-of-range limit or offset.
func (s *TaskService) FindTasks(ctx context.Context, f asr.TaskFilter) ([]*asr.Task, int, error) {
	if f.Limit < 1 || f.Limit > 200 {
		return nil, 0, asr.Errorf(asr.EINVALID, "Limit must be between 1 and 200.")
	} else if f.Offset < 0 || f.Offset > 1<<30 {
		return nil, 0, asr.Errorf(asr.EINVALID, "Offset must not be negative.")
	}
	var pattern *string
	if f.Query != "" {
		p := "%" + EscapeLike(f.Query) + "%"
		pattern = &p
	}
	q := s.db.queries()
	from, to := nonZeroTime(f.From), nonZeroTime(f.To)
	rows, err := q.TaskList(ctx, dbsqlc.TaskListParams{
		Status: nonEmpty(f.Status), Kind: nonEmpty(f.Kind), Pattern: pattern,
		CreatedFrom: from, CreatedTo: to,
		Max: int32(f.Limit), Skip: int32(f.Offset),
	})
	if err != nil {
		return nil, 0, wrapErr(err)
	}
	total, err := q.TaskCount(ctx, dbsqlc.TaskCountParams{
		Status: nonEmpty(f.Status), Kind: nonEmpty(f.Kind), Pattern: pattern,
		CreatedFrom: from, CreatedTo: to,
	})
	if err != nil {
		return nil, 0, wrapErr(err)
	}
	tasks := make([]*asr.Task, 0, len(rows))
	for _, r := range rows {
		t := toTask(r)
		if t.Status == asr.StatusQueued {
			if err := s.attachPosition(ctx, t); err != nil {
				return nil, 0, err
			}
		}
		tasks = append(tasks, t)
	}
	return tasks, int(total), nil
}

// EscapeLike escapes the ILIKE wildcards % and _ and the escape character
// itself, so s matches literally.
func EscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// RetryTask resets a failed or canceled task and defers a new job in one
// transaction. Returns ENOTFOUND, or ECONFLICT for any other status.
func (s *TaskService) RetryTask(ctx context.Context, id uuid.UUID) (*asr.Task, error) {
	var row dbsqlc.Transcription
	err := s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		cur, err := q.TaskGetByIDForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return asr.Errorf(asr.ENOTFOUND, "Task %s not found.", id)
		} else if err != nil {
			return err
		}
		if cur.Status != asr.StatusFailed && cur.Status != asr.StatusCanceled {
			return asr.Errorf(asr.ECONFLICT, "Only failed or canceled tasks can be retried; task %s is %s.", id, cur.Status)
		}
		if cur.Kind != asr.KindFile || cur.AudioKey == nil {
			return asr.Errorf(asr.ECONFLICT, "Task %s has no stored audio to transcribe again.", id)
		}
		if err := q.SegmentDeleteByTask(ctx, id); err != nil {
			return err
		}
		jobID, err := deferTranscribe(ctx, q, id, int(cur.Priority))
		if isUniqueViolation(err) {
			return asr.Errorf(asr.ECONFLICT, "Task %s still has a waiting job.", id)
		} else if err != nil {
			return err
		}
		row, err = q.TaskResetForRetry(ctx, dbsqlc.TaskResetForRetryParams{ID: id, JobID: &jobID})
		return err
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	task := toTask(row)
	if err := s.attachPosition(ctx, task); err != nil {
		return nil, err
	}
	return task, nil
}

// CancelTask cancels a queued task's job, or asks the worker of a processing
// task to abort, and marks the row canceled. Returns ENOTFOUND, or ECONFLICT
// when the task has already finished.
func (s *TaskService) CancelTask(ctx context.Context, id uuid.UUID) (*asr.Task, error) {
	var row dbsqlc.Transcription
	err := s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		cur, err := q.TaskGetByIDForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return asr.Errorf(asr.ENOTFOUND, "Task %s not found.", id)
		} else if err != nil {
			return err
		}
		switch cur.Status {
		case asr.StatusQueued, asr.StatusProcessing:
		default:
			return asr.Errorf(asr.ECONFLICT, "Task %s is already %s.", id, cur.Status)
		}
		if cur.JobID != nil {
			abort := cur.Status == asr.StatusProcessing
			if _, err := q.QueueCancelJob(ctx, dbsqlc.QueueCancelJobParams{JobID: *cur.JobID, Abort: abort}); err != nil {
				return err
			}
			// A worker may have fetched the job without marking the row yet:
			// ask it to abort too. The row's status already stops it starting.
			if !abort {
				if _, err := q.QueueCancelJob(ctx, dbsqlc.QueueCancelJobParams{JobID: *cur.JobID, Abort: true}); err != nil {
					return err
				}
			}
		}
		row, err = q.TaskSetCanceled(ctx, id)
		return err
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	return toTask(row), nil
}

// DeleteTask removes the row (its segments go with it) and every job that
// belongs to it; a running job is asked to abort and left to its worker.
// Returns ENOTFOUND.
func (s *TaskService) DeleteTask(ctx context.Context, id uuid.UUID) (*asr.Task, error) {
	var row dbsqlc.Transcription
	err := s.db.inTx(ctx, func(q *dbsqlc.Queries) error {
		var err error
		row, err = q.TaskGetByIDForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return asr.Errorf(asr.ENOTFOUND, "Task %s not found.", id)
		} else if err != nil {
			return err
		}
		if err := q.TaskDelete(ctx, id); err != nil {
			return err
		}
		jobs, err := q.QueueJobsForTask(ctx, id.String())
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Status == "doing" {
				if _, err := q.QueueCancelJob(ctx, dbsqlc.QueueCancelJobParams{JobID: j.ID, Abort: true}); err != nil {
					return err
				}
				continue
			}
			if err := q.QueueDeleteJob(ctx, j.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr(err)
	}
	return toTask(row), nil
}

// QueueStatus counts tasks by status and the active workers.
func (s *TaskService) QueueStatus(ctx context.Context, workerTimeout time.Duration) (*asr.QueueStatus, error) {
	q := s.db.queries()
	counts, err := q.TaskCountByStatus(ctx)
	if err != nil {
		return nil, wrapErr(err)
	}
	var st asr.QueueStatus
	for _, c := range counts {
		n := int(c.Count)
		switch c.Status {
		case asr.StatusQueued:
			st.Queued = n
		case asr.StatusProcessing:
			st.Processing = n
		case asr.StatusDone:
			st.Done = n
		case asr.StatusFailed:
			st.Failed = n
		case asr.StatusCanceled:
			st.Canceled = n
		}
	}
	w, err := q.WorkerCountActive(ctx, workerTimeout.Seconds())
	if err != nil {
		return nil, wrapErr(err)
	}
	st.Workers, st.WorkersBusy = int(w.Workers), int(w.WorkersBusy)
	live, err := q.LiveSessionCountOpen(ctx)
	if err != nil {
		return nil, wrapErr(err)
	}
	st.Live = int(live)
	return &st, nil
}

func (s *TaskService) attachPosition(ctx context.Context, t *asr.Task) error {
	t.Position = 0
	if t.Status != asr.StatusQueued || t.JobID == nil {
		return nil
	}
	pos, err := s.db.queries().QueuePosition(ctx, *t.JobID)
	if err != nil {
		return wrapErr(err)
	}
	t.Position = int(pos)
	return nil
}

// estimateWait guesses the seconds until a job at position starts: the jobs
// ahead of it and those running, shared among the active workers' slots,
// times the recent mean job time.
func (s *TaskService) estimateWait(ctx context.Context, position int) (float64, error) {
	if position <= 0 {
		return 0, nil
	}
	est, err := s.db.queries().TaskWaitEstimate(ctx, s.WorkerTimeout.Seconds())
	if err != nil {
		return 0, wrapErr(err)
	}
	per, running, slots := est.AvgSeconds, est.Running, est.Slots
	if per <= 0 {
		per = defaultJobSeconds
	}
	ahead := float64(position-1) + float64(running)
	if slots < 1 {
		slots = 1
	}
	wait := ahead / float64(slots) * per
	return float64(int64(wait*10)) / 10, nil
}

func toTask(r dbsqlc.Transcription) *asr.Task {
	return &asr.Task{
		ID:                r.ID,
		Kind:              r.Kind,
		Status:            r.Status,
		Filename:          r.Filename,
		AudioKey:          deref(r.AudioKey),
		AudioSize:         deref(r.AudioSize),
		ContentType:       deref(r.ContentType),
		LanguageRequested: deref(r.LanguageRequested),
		Hotwords:          r.Hotwords,
		Priority:          int(r.Priority),
		Progress:          float64(r.Progress),
		Text:              r.Text,
		Language:          deref(r.Language),
		DurationS:         r.DurationS,
		Model:             deref(r.Model),
		Engine:            deref(r.Engine),
		Worker:            deref(r.Worker),
		RTF:               r.Rtf,
		EngineS:           r.EngineS,
		Error:             deref(r.Error),
		JobID:             r.JobID,
		Attempts:          int(r.Attempts),
		CreatedAt:         r.CreatedAt,
		StartedAt:         r.StartedAt,
		FinishedAt:        r.FinishedAt,
		UpdatedAt:         r.UpdatedAt,
	}
}

// nonZeroTime maps the zero time (no bound) to NULL.
func nonZeroTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// QueueDepths returns the number of waiting jobs of each queue that has any.
// Returns EUNAVAILABLE when the database does not answer.
func (s *TaskService) QueueDepths(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.queries().QueueDepthByQueue(ctx)
	if err != nil {
		return nil, wrapErr(err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.QueueName] = int(r.Depth)
	}
	return out, nil
}
