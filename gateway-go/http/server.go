package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// ShutdownTimeout is how long Close waits for requests in flight.
const ShutdownTimeout = 5 * time.Second

// Server is the gateway's HTTP server. Set its services before Open.
type Server struct {
	ln     net.Listener
	server *http.Server
	mux    *http.ServeMux

	// Addr is the address to listen on, e.g. "127.0.0.1:8080" or ":0".
	Addr string

	// Logger receives request logs and internal errors (slog.Default if nil).
	Logger *slog.Logger

	TaskService   asr.TaskService
	WorkerService asr.WorkerService
	EventService  asr.EventService
	HealthService asr.HealthService
	AudioStore    asr.AudioStore
	// CheckAudio validates uploads (audiocheck.Check in production).
	CheckAudio asr.AudioChecker

	// LiveService, CaptionService and LiveStore serve live sessions over
	// WebSocket (at / for upgrade requests and at /api/v1/asr/stream).
	LiveService    asr.LiveService
	CaptionService asr.CaptionService
	LiveStore      asr.LiveAudioStore
	// LiveMaxSessions bounds the open live sockets (0: no limit).
	LiveMaxSessions int
	// WSMaxFrameBytes bounds one WebSocket message.
	WSMaxFrameBytes int64
	// WSIdleTimeout ends a live session whose client sends nothing for that long.
	WSIdleTimeout time.Duration
	// LiveFinalWait is how long a socket waits for the final caption after
	// the client's end of speech.
	LiveFinalWait time.Duration
	// LivePollInterval is how often open sessions' workers are checked.
	LivePollInterval time.Duration

	// UI serves every path outside /api; a 404 when nil.
	UI http.Handler

	// MaxUploadBytes bounds the audio part of an upload.
	MaxUploadBytes int64
	// WorkerTimeout is how recent a heartbeat must be for a worker to count
	// as active.
	WorkerTimeout time.Duration
	// KeepaliveInterval is how often an idle event stream gets a comment.
	KeepaliveInterval time.Duration
	// UploadIdleTimeout cuts off an upload that sends no byte for that long
	// (0: never); its staged file is removed.
	UploadIdleTimeout time.Duration

	// APIToken, when set, must be carried by every request but the health
	// check and the UI's static files, as Authorization: Bearer or ?token=.
	APIToken string
	// CORSOrigins are the origins allowed cross-origin requests; "*" allows
	// any; empty means same-origin only (no CORS headers).
	CORSOrigins []string
	// LiveMaxPerClient bounds the open live sockets of one remote IP (0: no limit).
	LiveMaxPerClient int
	// OpenAITimeout is how long POST /v1/audio/transcriptions waits for its
	// transcription.
	OpenAITimeout time.Duration
	// MetricsService gathers the database figures of /metrics (queue depths).
	MetricsService asr.MetricsService

	metrics *metrics

	// shutdown is closed by Close so long-lived streams end.
	shutdown chan struct{}
	// baseCtx is cancelled by Close so live sockets end.
	baseCtx    context.Context
	baseCancel context.CancelFunc
	live       liveRegistry
}

// NewServer returns a server with its routes and defaults set.
func NewServer() *Server {
	s := &Server{
		mux:               http.NewServeMux(),
		MaxUploadBytes:    512 << 20,
		WorkerTimeout:     15 * time.Second,
		KeepaliveInterval: 15 * time.Second,
		LiveMaxSessions:   32,
		WSMaxFrameBytes:   1024 << 10,
		WSIdleTimeout:     60 * time.Second,
		LiveFinalWait:     60 * time.Second,
		LivePollInterval:  2 * time.Second,
		UploadIdleTimeout: 30 * time.Second,
		LiveMaxPerClient:  4,
		OpenAITimeout:     600 * time.Second,
		shutdown:          make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.server = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	s.routes()
	return s
}

// Routes lists the method and path patterns of the API, as registered on
// the router; the OpenAPI description must cover each of them.
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.apiRoutes()))
	for _, rt := range s.apiRoutes() {
		out = append(out, rt.pattern)
	}
	return out
}

type route struct {
	pattern string
	handler http.HandlerFunc
}

func (s *Server) apiRoutes() []route {
	return []route{
		{"POST /api/v1/asr/submit", s.handleSubmit},
		{"GET /api/v1/asr/result/{id}", s.handleResult},
		{"GET /api/v1/asr/history", s.handleHistory},
		{"GET /api/v1/asr/audio/{id}", s.handleAudio},
		{"GET /api/v1/asr/export/{file}", s.handleExport},
		{"GET /api/v1/asr/queue/status", s.handleQueueStatus},
		{"POST /api/v1/asr/retry/{id}", s.handleRetry},
		{"POST /api/v1/asr/cancel/{id}", s.handleCancel},
		{"DELETE /api/v1/asr/task/{id}", s.handleDelete},
		{"GET /api/v1/workers", s.handleWorkers},
		{"GET /api/v1/health", s.handleHealth},
		{"GET /api/v1/events", s.handleEvents},
		{"GET /api/v1/asr/stream", s.handleStream},
		{"GET /api/v1/openapi.json", s.handleOpenAPI},
		{"POST /v1/audio/transcriptions", s.handleOpenAITranscriptions},
		{"GET /v1/models", s.handleOpenAIModels},
		{"GET /metrics", s.handleMetrics},
	}
}

func (s *Server) routes() {
	m := s.mux
	for _, rt := range s.apiRoutes() {
		m.HandleFunc(rt.pattern, rt.handler)
	}
	m.HandleFunc("/api/", s.handleAPINotFound)
	m.HandleFunc("/v1/", s.handleOpenAINotFound)
	m.HandleFunc("/", s.handleUI)
}

// ServeHTTP serves a request through the request log, the access guard
// (CORS, token, body limits) and the router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.logRequests(s.guard(s.mux)).ServeHTTP(w, r)
}

// Open listens on Addr and serves in a goroutine.
func (s *Server) Open() (err error) {
	if s.ln, err = net.Listen("tcp", s.Addr); err != nil {
		return err
	}
	if s.EventService != nil && s.TaskService != nil {
		go s.watchTasks()
	}
	go func() {
		if err := s.server.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger().Error("http server stopped", "error", err)
		}
	}()
	return nil
}

// Close ends event streams and shuts the server down gracefully, waiting up
// to ShutdownTimeout for requests in flight.
func (s *Server) Close() error {
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
	// Live clients are told before their reads are cancelled (a cancelled
	// read closes the socket at once, with no message).
	s.live.restartAll(3 * time.Second)
	s.baseCancel()
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.server.Shutdown(ctx)
	// Live sockets are hijacked: Shutdown does not wait for them.
	done := make(chan struct{})
	go func() { s.live.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

// Port returns the TCP port the server listens on, 0 before Open.
func (s *Server) Port() int {
	if s.ln == nil {
		return 0
	}
	return s.ln.Addr().(*net.TCPAddr).Port
}

// URL returns the server's base URL, with 127.0.0.1 for an unspecified or
// loopback host.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() || addr.IP.IsLoopback() {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) handleAPINotFound(w http.ResponseWriter, r *http.Request) {
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		if method == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = method
		if _, pattern := s.mux.Handler(r2); pattern != "/api/" && pattern != "" {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, &ErrorResponse{
				Error: fmt.Sprintf("Method %s is not allowed here; use %s.", r.Method, method), Code: asr.EINVALID,
			})
			return
		}
	}
	s.Error(w, r, asr.Errorf(asr.ENOTFOUND, "No API endpoint at %s.", r.URL.Path))
}

func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && isWebSocketUpgrade(r) {
		s.handleStream(w, r)
		return
	}
	if s.UI == nil {
		http.NotFound(w, r)
		return
	}
	s.UI.ServeHTTP(w, r)
}
