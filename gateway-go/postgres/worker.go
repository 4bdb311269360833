package postgres

import (
	"context"
	"encoding/json"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// Ensure the interface is implemented.
var _ asr.WorkerService = (*WorkerService)(nil)

// WorkerService implements asr.WorkerService on the workers table.
type WorkerService struct {
	db *DB
}

// NewWorkerService returns a WorkerService on db.
func NewWorkerService(db *DB) *WorkerService {
	return &WorkerService{db: db}
}

// FindWorkers returns every registered worker, most recent heartbeat first,
// with Active computed against timeout.
func (s *WorkerService) FindWorkers(ctx context.Context, timeout time.Duration) ([]*asr.Worker, error) {
	rows, err := s.db.queries().WorkerList(ctx, timeout.Seconds())
	if err != nil {
		return nil, wrapErr(err)
	}
	out := make([]*asr.Worker, 0, len(rows))
	for _, r := range rows {
		w := r.Worker
		models := json.RawMessage(w.Models)
		if len(models) == 0 || !json.Valid(models) {
			models = json.RawMessage("{}")
		}
		queues := w.Queues
		if queues == nil {
			queues = []string{}
		}
		out = append(out, &asr.Worker{
			ID:            w.ID,
			Host:          w.Host,
			PID:           int(w.Pid),
			Device:        w.Device,
			Engine:        w.Engine,
			Queues:        queues,
			Models:        models,
			Concurrency:   int(w.Concurrency),
			State:         w.State,
			CurrentTask:   w.CurrentTask,
			JobsDone:      int(w.JobsDone),
			AvgRTF:        w.AvgRtf,
			Version:       w.Version,
			Error:         deref(w.Error),
			StartedAt:     w.StartedAt,
			LastHeartbeat: w.LastHeartbeat,
			Active:        r.Active,
		})
	}
	return out, nil
}

// ActiveEngines returns the distinct engines of the active workers.
func (s *WorkerService) ActiveEngines(ctx context.Context, timeout time.Duration) ([]string, error) {
	engines, err := s.db.queries().WorkerActiveEngines(ctx, timeout.Seconds())
	if err != nil {
		return nil, wrapErr(err)
	}
	if engines == nil {
		engines = []string{}
	}
	return engines, nil
}
