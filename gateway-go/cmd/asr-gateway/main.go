// Command asr-gateway serves the LAN speech-to-text platform's HTTP API and
// web UI, and applies the database migrations.
//
//	asr-gateway [serve] [flags]   run the gateway (default)
//	asr-gateway migrate [flags]   apply pending migrations and exit
//
// Every flag has an environment variable (DATABASE_URL, ASR_*), also read
// from a .env file in the working directory; flags win over both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/audiocheck"
	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/lanasr/lanasr/gateway-go/storage"
	"github.com/lanasr/lanasr/gateway-go/ui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "asr-gateway: reading .env: %v\n", err)
		os.Exit(2)
	}

	m := NewMain()
	if err := m.ParseFlags(ctx, os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "asr-gateway: %v\n", err)
		os.Exit(2)
	}

	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		fmt.Fprintf(os.Stderr, "asr-gateway: %v\n", err)
		os.Exit(1)
	}
	if m.Command == "migrate" {
		os.Exit(0)
	}

	<-ctx.Done()
	stop()
	m.Logger.Info("asr-gateway shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "asr-gateway: %v\n", err)
		os.Exit(1)
	}
}

// Config holds every setting of the gateway.
type Config struct {
	DatabaseURL   string
	HTTPAddr      string
	StorageDir    string
	StorageFsync  bool
	MaxUploadMB   int64
	WorkerTimeout time.Duration
	UIDir         string
	LogLevel      string
	Migrate       bool

	LiveMaxSessions int
	WSMaxFrameKB    int64
	WSIdle          time.Duration

	// APIToken is never logged or printed.
	APIToken         string
	CORSOrigins      []string
	LiveMaxPerClient int
	UploadIdle       time.Duration
	OpenAITimeout    time.Duration
}

// Main is the program, kept apart from main() so tests can run it.
type Main struct {
	// Command is "serve" or "migrate".
	Command string
	Config  Config

	// Getenv reads the environment (os.Getenv unless a test sets it).
	Getenv func(string) string
	// Stdout receives the listening URL and migration messages; Stderr the logs.
	Stdout, Stderr io.Writer

	Logger     *slog.Logger
	DB         *postgres.DB
	Listener   *postgres.Listener
	HTTPServer *asrhttp.Server
}

// NewMain returns a Main reading the process environment.
func NewMain() *Main {
	return &Main{Command: "serve", Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
}

// setting is one flag with its environment variable.
type setting struct {
	flag, env, def, usage string
}

var settings = []setting{
	{"database-url", "DATABASE_URL", "", "PostgreSQL URL (required)"},
	{"http-addr", "ASR_HTTP_ADDR", "127.0.0.1:8080", "address to listen on"},
	{"storage-dir", "ASR_STORAGE_DIR", "./.data/audio", "audio store directory"},
	{"storage-fsync", "ASR_STORAGE_FSYNC", "false", "fsync every upload before acknowledging it (durable across power loss, slower)"},
	{"max-upload-mb", "ASR_MAX_UPLOAD_MB", "512", "largest accepted upload, in MiB"},
	{"worker-timeout-s", "ASR_WORKER_TIMEOUT_S", "15", "seconds since its last heartbeat after which a worker is inactive"},
	{"ui-dir", "ASR_UI_DIR", "", "serve the frontend from this directory instead of the embedded build"},
	{"log-level", "ASR_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"migrate", "ASR_MIGRATE", "true", "serve: apply pending migrations at start"},
	{"live-max-sessions", "ASR_LIVE_MAX_SESSIONS", "32", "most live WebSocket sessions open at once"},
	{"ws-max-frame-kb", "ASR_WS_MAX_FRAME_KB", "1024", "largest WebSocket message, in KiB"},
	{"ws-idle-s", "ASR_WS_IDLE_S", "60", "seconds without a frame after which a live client counts as gone"},
	{"api-token", "ASR_API_TOKEN", "", "when set, every request but the health check and the UI's files must carry Authorization: Bearer <token> or ?token=<token>"},
	{"cors-origins", "ASR_CORS_ORIGINS", "", "origins allowed cross-origin requests: empty (same-origin only), * or a comma-separated list"},
	{"live-max-per-client", "ASR_LIVE_MAX_PER_CLIENT", "4", "most live sessions open at once from one client IP"},
	{"upload-idle-s", "ASR_UPLOAD_IDLE_S", "30", "seconds without data after which an upload is cut off"},
	{"openai-timeout-s", "ASR_OPENAI_TIMEOUT_S", "600", "seconds POST /v1/audio/transcriptions waits for its transcription"},
}

// ParseFlags reads the subcommand, the flags and the environment into
// m.Config. Returns flag.ErrHelp after printing usage for -h.
func (m *Main) ParseFlags(ctx context.Context, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "serve", "migrate":
			m.Command, args = args[0], args[1:]
		case "help":
			args = []string{"-h"}
		default:
			return fmt.Errorf("unknown command %q (want serve or migrate)", args[0])
		}
	}

	fs := flag.NewFlagSet("asr-gateway", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		def := s.def
		if v := m.Getenv(s.env); v != "" {
			def = v
		}
		values[s.flag] = fs.String(s.flag, def, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: asr-gateway [serve|migrate] [flags]\n\n")
		fmt.Fprintf(fs.Output(), "Settings come from flags, else the environment, else a .env file, else the default.\n\n")
		for _, s := range settings {
			def := s.def
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(fs.Output(), "  -%s  (env %s, default %s)\n    \t%s\n", s.flag, s.env, def, s.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	c := &m.Config
	c.DatabaseURL = *values["database-url"]
	c.HTTPAddr = *values["http-addr"]
	c.StorageDir = *values["storage-dir"]
	c.UIDir = *values["ui-dir"]
	c.LogLevel = *values["log-level"]
	mb, err := strconv.ParseInt(*values["max-upload-mb"], 10, 64)
	if err != nil || mb < 1 {
		return fmt.Errorf("max-upload-mb: want a positive integer, got %q", *values["max-upload-mb"])
	}
	c.MaxUploadMB = mb
	secs, err := strconv.ParseFloat(*values["worker-timeout-s"], 64)
	if err != nil || secs <= 0 {
		return fmt.Errorf("worker-timeout-s: want a positive number, got %q", *values["worker-timeout-s"])
	}
	c.WorkerTimeout = time.Duration(secs * float64(time.Second))
	if c.StorageFsync, err = strconv.ParseBool(*values["storage-fsync"]); err != nil {
		return fmt.Errorf("storage-fsync: want true or false, got %q", *values["storage-fsync"])
	}
	if c.Migrate, err = strconv.ParseBool(*values["migrate"]); err != nil {
		return fmt.Errorf("migrate: want true or false, got %q", *values["migrate"])
	}
	n, err := strconv.Atoi(*values["live-max-sessions"])
	if err != nil || n < 1 {
		return fmt.Errorf("live-max-sessions: want a positive integer, got %q", *values["live-max-sessions"])
	}
	c.LiveMaxSessions = n
	kb, err := strconv.ParseInt(*values["ws-max-frame-kb"], 10, 64)
	if err != nil || kb < 1 || kb > 1<<20 {
		return fmt.Errorf("ws-max-frame-kb: want a positive integer, got %q", *values["ws-max-frame-kb"])
	}
	c.WSMaxFrameKB = kb
	idle, err := strconv.ParseFloat(*values["ws-idle-s"], 64)
	if err != nil || idle <= 0 {
		return fmt.Errorf("ws-idle-s: want a positive number, got %q", *values["ws-idle-s"])
	}
	c.WSIdle = time.Duration(idle * float64(time.Second))
	c.APIToken = strings.TrimSpace(*values["api-token"])
	c.CORSOrigins = nil
	for _, o := range strings.Split(*values["cors-origins"], ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	if c.LiveMaxPerClient, err = strconv.Atoi(*values["live-max-per-client"]); err != nil || c.LiveMaxPerClient < 1 {
		return fmt.Errorf("live-max-per-client: want a positive integer, got %q", *values["live-max-per-client"])
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"upload-idle-s", &c.UploadIdle}, {"openai-timeout-s", &c.OpenAITimeout}} {
		secs, err := strconv.ParseFloat(*values[d.name], 64)
		if err != nil || secs <= 0 || math.IsInf(secs, 0) {
			return fmt.Errorf("%s: want a positive number, got %q", d.name, *values[d.name])
		}
		*d.dst = time.Duration(secs * float64(time.Second))
	}
	if c.DatabaseURL == "" {
		return errors.New("no database: set DATABASE_URL or -database-url")
	}
	return nil
}

// Run runs the subcommand. For serve it returns once the server listens,
// leaving it to Close to stop it; for migrate once migrations are applied.
func (m *Main) Run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.LogLevel)); err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	m.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))

	if m.Command == "migrate" || m.Config.Migrate {
		res, err := postgres.Migrate(ctx, m.Config.DatabaseURL, func(format string, args ...any) {
			m.Logger.Info(fmt.Sprintf(format, args...))
		})
		if err != nil {
			return err
		}
		if m.Command == "migrate" {
			fmt.Fprintf(m.Stdout, "asr-gateway: schema at version %d (was %d, latest %d)\n", res.To, res.From, res.Latest)
			return nil
		}
	}

	db, err := postgres.Open(ctx, m.Config.DatabaseURL)
	if err != nil {
		return err
	}
	m.DB = db

	store, err := storage.New(m.Config.StorageDir)
	if err != nil {
		return err
	}
	store.Sync = m.Config.StorageFsync

	m.Listener, err = postgres.NewListener(m.Config.DatabaseURL, m.Logger)
	if err != nil {
		return err
	}
	m.Listener.Start(context.WithoutCancel(ctx))

	tasks := postgres.NewTaskService(db)
	tasks.WorkerTimeout = m.Config.WorkerTimeout

	s := asrhttp.NewServer()
	s.Addr = m.Config.HTTPAddr
	s.Logger = m.Logger
	s.TaskService = tasks
	s.WorkerService = postgres.NewWorkerService(db)
	s.EventService = m.Listener
	s.HealthService = db
	s.AudioStore = store
	s.CheckAudio = audiocheck.Check
	s.UI = ui.Handler(m.Config.UIDir)
	s.MaxUploadBytes = m.Config.MaxUploadMB << 20
	s.WorkerTimeout = m.Config.WorkerTimeout
	s.LiveService = postgres.NewLiveService(db)
	s.CaptionService = m.Listener
	s.LiveStore = store
	s.LiveMaxSessions = m.Config.LiveMaxSessions
	s.WSMaxFrameBytes = m.Config.WSMaxFrameKB << 10
	s.WSIdleTimeout = m.Config.WSIdle
	s.APIToken = m.Config.APIToken
	s.CORSOrigins = m.Config.CORSOrigins
	s.LiveMaxPerClient = m.Config.LiveMaxPerClient
	s.UploadIdleTimeout = m.Config.UploadIdle
	s.OpenAITimeout = m.Config.OpenAITimeout
	s.MetricsService = tasks
	if err := s.Open(); err != nil {
		return err
	}
	m.HTTPServer = s

	m.Logger.Info("asr-gateway started", "version", asr.Version, "storage", store.Root(), "addr", m.Config.HTTPAddr,
		"token_required", m.Config.APIToken != "", "cors_origins", strings.Join(m.Config.CORSOrigins, ","))
	fmt.Fprintf(m.Stdout, "asr-gateway listening on %s\n", s.URL())
	return nil
}

// Close stops the server, the event listener and the database pool.
func (m *Main) Close() error {
	var err error
	if m.HTTPServer != nil {
		err = m.HTTPServer.Close()
	}
	if m.Listener != nil {
		m.Listener.Close()
	}
	if m.DB != nil {
		m.DB.Close()
	}
	return err
}
