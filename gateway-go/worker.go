package asr

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Worker states, as stored in workers.state.
const (
	WorkerStarting = "starting"
	WorkerIdle     = "idle"
	WorkerBusy     = "busy"
	WorkerStopping = "stopping"
	WorkerGone     = "gone"
	WorkerError    = "error"
)

// Worker is one worker process, as it registers itself in the workers table.
type Worker struct {
	ID            string
	Host          string
	PID           int
	Device        string
	Engine        string
	Queues        []string
	Models        json.RawMessage
	Concurrency   int
	State         string
	CurrentTask   *uuid.UUID
	JobsDone      int
	AvgRTF        *float64
	Version       string
	Error         string
	StartedAt     time.Time
	LastHeartbeat time.Time

	// Active reports that the worker is not gone and heartbeated recently.
	Active bool
}

// WorkerService reads the worker registry.
type WorkerService interface {
	// FindWorkers returns every registered worker, most recent heartbeat
	// first, with Active computed against timeout.
	FindWorkers(ctx context.Context, timeout time.Duration) ([]*Worker, error)
}

// HealthService reports whether the gateway's dependencies answer.
type HealthService interface {
	// Ping returns an EUNAVAILABLE error when the database does not answer.
	Ping(ctx context.Context) error
}
