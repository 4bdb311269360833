package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// handleEvents streams task and worker events as Server-Sent Events, optionally
// only those of one task (?task_id=), with a keepalive comment when idle.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("task_id")
	if filter != "" {
		id, err := asr.ParseTaskID(filter)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		filter = id.String()
	}
	if s.EventService == nil {
		s.Error(w, r, asr.Errorf(asr.EUNAVAILABLE, "Events are not available."))
		return
	}
	sub := s.EventService.Subscribe()
	defer sub.Close()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 3000\n: connected\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}

	interval := s.KeepaliveInterval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	keepalive := time.NewTicker(interval)
	defer keepalive.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.shutdown:
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if filter != "" && ev.TaskID != filter {
				continue
			}
			buf.Reset()
			if err := json.Compact(&buf, ev.Payload); err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, buf.Bytes()); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
