// Package http serves the gateway's HTTP API: uploads, results, history,
// audio, exports, queue and worker status, health, and Server-Sent Events,
// plus the embedded web UI on every path outside /api.
package http

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// codes maps each application error code to its HTTP status.
var codes = map[string]int{
	asr.EINVALID:          http.StatusBadRequest,
	asr.ENOTFOUND:         http.StatusNotFound,
	asr.ECONFLICT:         http.StatusConflict,
	asr.ETOOLARGE:         http.StatusRequestEntityTooLarge,
	asr.EUNSUPPORTEDMEDIA: http.StatusUnsupportedMediaType,
	asr.ECORRUPTAUDIO:     http.StatusUnprocessableEntity,
	asr.EUNAVAILABLE:      http.StatusServiceUnavailable,
	asr.EINTERNAL:         http.StatusInternalServerError,
	asr.EUNAUTHORIZED:     http.StatusUnauthorized,
	asr.EFORBIDDEN:        http.StatusForbidden,
	asr.ETIMEOUT:          http.StatusRequestTimeout,
	asr.ETOOMANYSESSIONS:  http.StatusTooManyRequests,
	asr.ESTORAGEFULL:      http.StatusInsufficientStorage,
}

// ErrorStatusCode returns the HTTP status of an application error code,
// 500 for an unknown one.
func ErrorStatusCode(code string) int {
	if v, ok := codes[code]; ok {
		return v
	}
	return http.StatusInternalServerError
}

// ErrorResponse is the JSON body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error writes err as JSON with the status of its code; internal errors are
// logged and shown only as a generic sentence.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := asr.ErrorCode(err), asr.ErrorMessage(err)
	if code == asr.EINTERNAL {
		s.logger().Error("http error", "method", r.Method, "path", r.URL.Path, "error", err)
	} else if code == asr.EUNAVAILABLE || code == asr.ESTORAGEFULL {
		s.logger().Warn("http error", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	}
	s.metrics.errors.WithLabelValues(code).Inc()
	writeJSON(w, ErrorStatusCode(code), &ErrorResponse{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// statusRecorder remembers the status and size of a response for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests logs every request with log/slog once it is answered, and turns
// a panic into a 500.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger().Error("http panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				if rec.status == 0 {
					s.Error(rec, r, asr.Errorf(asr.EINTERNAL, "Internal error."))
				}
			}
			level := slog.LevelInfo
			if !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/v1/") {
				level = slog.LevelDebug
			}
			s.metrics.observeRequest(r, rec.status, time.Since(start))
			s.logger().Log(r.Context(), level, "http request",
				"method", r.Method, "path", r.URL.Path, "status", rec.status,
				"bytes", rec.bytes, "duration_ms", time.Since(start).Milliseconds(),
				"remote", r.RemoteAddr)
		}()
		next.ServeHTTP(rec, r)
	})
}
