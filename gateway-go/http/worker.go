package http

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// WorkerJSON is one worker in GET /api/v1/workers.
type WorkerJSON struct {
	ID            string          `json:"id"`
	Host          string          `json:"host"`
	PID           int             `json:"pid"`
	Device        string          `json:"device"`
	Engine        string          `json:"engine"`
	Queues        []string        `json:"queues"`
	Models        json.RawMessage `json:"models"`
	Concurrency   int             `json:"concurrency"`
	State         string          `json:"state"`
	CurrentTask   *string         `json:"current_task"`
	JobsDone      int             `json:"jobs_done"`
	AvgRTF        *float64        `json:"avg_rtf"`
	LastHeartbeat time.Time       `json:"last_heartbeat"`
	StartedAt     time.Time       `json:"started_at"`
	Version       string          `json:"version"`
	Error         *string         `json:"error"`
	Active        bool            `json:"active"`
}

// WorkersResponse is the body of GET /api/v1/workers.
type WorkersResponse struct {
	Workers []*WorkerJSON `json:"workers"`
}

func (s *Server) handleWorkers(w http.ResponseWriter, r *http.Request) {
	workers, err := s.WorkerService.FindWorkers(r.Context(), s.WorkerTimeout)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	resp := &WorkersResponse{Workers: make([]*WorkerJSON, 0, len(workers))}
	for _, wk := range workers {
		j := &WorkerJSON{
			ID: wk.ID, Host: wk.Host, PID: wk.PID, Device: wk.Device, Engine: wk.Engine,
			Queues: wk.Queues, Models: wk.Models, Concurrency: wk.Concurrency, State: wk.State,
			JobsDone: wk.JobsDone, AvgRTF: wk.AvgRTF, LastHeartbeat: wk.LastHeartbeat.UTC(),
			StartedAt: wk.StartedAt.UTC(), Version: wk.Version, Error: strPtr(wk.Error), Active: wk.Active,
		}
		if wk.CurrentTask != nil {
			t := wk.CurrentTask.String()
			j.CurrentTask = &t
		}
		resp.Workers = append(resp.Workers, j)
	}
	writeJSON(w, http.StatusOK, resp)
}

// HealthResponse is the body of GET /api/v1/health.
type HealthResponse struct {
	Status        string   `json:"status"`
	Database      string   `json:"database"`
	WorkersActive int      `json:"workers_active"`
	Engines       []string `json:"engines"`
	Version       string   `json:"version"`
	Reason        string   `json:"reason,omitempty"`
	// Error and Code repeat the reason in the shape of every API error.
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// unavailable writes resp as a 503 with reason.
func unavailable(w http.ResponseWriter, resp *HealthResponse, status, reason string) {
	resp.Status, resp.Reason = status, reason
	resp.Error, resp.Code = reason, asr.EUNAVAILABLE
	writeJSON(w, http.StatusServiceUnavailable, resp)
}

// handleHealth answers 200 when the database answers and a worker is active,
// 503 with the reason otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	resp := &HealthResponse{Status: "ready", Database: "ok", Engines: []string{}, Version: asr.Version}
	if err := s.HealthService.Ping(ctx); err != nil {
		resp.Database = "unreachable"
		unavailable(w, resp, "unavailable", asr.ErrorMessage(err))
		return
	}
	workers, err := s.WorkerService.FindWorkers(ctx, s.WorkerTimeout)
	if err != nil {
		resp.Database = "error"
		unavailable(w, resp, "unavailable", asr.ErrorMessage(err))
		return
	}
	seen := map[string]bool{}
	for _, wk := range workers {
		if !wk.Active {
			continue
		}
		resp.WorkersActive++
		if !seen[wk.Engine] {
			seen[wk.Engine] = true
			resp.Engines = append(resp.Engines, wk.Engine)
		}
	}
	if resp.WorkersActive == 0 {
		unavailable(w, resp, "no_workers", "No worker is active: start one with `make worker`.")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
