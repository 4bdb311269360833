package postgres

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/postgres/internal/dbsqlc"
)

// EventChannel is the LISTEN/NOTIFY channel the database's triggers write to
// (internal/dbsqlc/event.sql names it too).
const EventChannel = "asr_events"

// CaptionChannel is the LISTEN/NOTIFY channel workers send live captions on,
// with payload {"session_id", "msg"}.
const CaptionChannel = "asr_captions"

// ListenerApplicationName is the application_name of the LISTEN connection,
// so it can be told apart in pg_stat_activity.
const ListenerApplicationName = "asr-gateway-events"

// Ensure the interface is implemented.
var (
	_ asr.EventService   = (*Listener)(nil)
	_ asr.CaptionService = (*Listener)(nil)
)

// Listener holds one dedicated LISTEN connection on EventChannel and
// CaptionChannel, reconnecting with exponential backoff, and fans each event
// out to subscribers and each caption to its session's queue. A subscriber
// whose buffer is full loses the event instead of blocking.
type Listener struct {
	connConfig *pgx.ConnConfig
	logger     *slog.Logger

	// BufferSize is each subscription's channel capacity.
	BufferSize int
	// MinBackoff and MaxBackoff bound the wait between reconnects.
	MinBackoff, MaxBackoff time.Duration

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	caps   map[uuid.UUID]*asr.CaptionQueue
	ready  chan struct{}
	isUp   atomic.Bool
	conns  atomic.Int64
	drops  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

// NewListener returns a listener for the database at databaseURL. Call Start
// to begin listening. Returns EINVALID for a malformed URL.
func NewListener(databaseURL string, logger *slog.Logger) (*Listener, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, asr.Errorf(asr.EINVALID, "Malformed database URL.")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = ListenerApplicationName
	}
	return &Listener{
		connConfig: cfg,
		logger:     logger,
		BufferSize: 64,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
		subs:       make(map[*subscription]struct{}),
		caps:       make(map[uuid.UUID]*asr.CaptionQueue),
		ready:      make(chan struct{}),
	}, nil
}

// Start runs the listen loop in a goroutine until ctx ends or Close is called.
func (l *Listener) Start(ctx context.Context) {
	ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		l.run(ctx)
	}()
}

// Close stops the listen loop, waits for it, and closes every subscription.
func (l *Listener) Close() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		delete(l.subs, s)
		close(s.c)
	}
}

// Ready returns a channel closed once the first LISTEN has succeeded.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Connected reports whether the LISTEN connection is currently up.
func (l *Listener) Connected() bool { return l.isUp.Load() }

// Connects returns how many times LISTEN has succeeded, reconnects included.
func (l *Listener) Connects() int64 { return l.conns.Load() }

// Dropped returns how many events were dropped for slow subscribers.
func (l *Listener) Dropped() int64 { return l.drops.Load() }

// Subscribe returns a new subscription to every event.
func (l *Listener) Subscribe() asr.Subscription {
	s := &subscription{l: l, c: make(chan asr.Event, l.BufferSize)}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	return s
}

// SubscribeCaptions pushes the captions of session id to q until the returned
// function is called. A later subscription for the same id replaces this one.
func (l *Listener) SubscribeCaptions(id uuid.UUID, q *asr.CaptionQueue) func() {
	l.mu.Lock()
	l.caps[id] = q
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		if l.caps[id] == q {
			delete(l.caps, id)
		}
		l.mu.Unlock()
	}
}

func (l *Listener) publishCaption(c asr.Caption) {
	l.mu.Lock()
	q := l.caps[c.SessionID]
	l.mu.Unlock()
	if q != nil {
		q.Push(c)
	}
}

func (l *Listener) unsubscribe(s *subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.subs[s]; ok {
		delete(l.subs, s)
		close(s.c)
	}
}

func (l *Listener) publish(ev asr.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		select {
		case s.c <- ev:
		default:
			l.drops.Add(1)
		}
	}
}

func (l *Listener) run(ctx context.Context) {
	var readyOnce sync.Once
	backoff := l.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := l.listen(ctx, func() {
			readyOnce.Do(func() { close(l.ready) })
		})
		l.isUp.Store(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = l.MinBackoff
		}
		l.logger.Warn("event listener disconnected; reconnecting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, l.MaxBackoff)
	}
}

func (l *Listener) listen(ctx context.Context, onReady func()) error {
	conn, err := pgx.ConnectConfig(ctx, l.connConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := dbsqlc.New(conn).EventListen(ctx); err != nil {
		return err
	}
	if err := dbsqlc.New(conn).CaptionListen(ctx); err != nil {
		return err
	}
	l.isUp.Store(true)
	l.conns.Add(1)
	onReady()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == CaptionChannel {
			c, err := asr.ParseCaption([]byte(n.Payload))
			if err != nil {
				l.logger.Warn("ignoring malformed caption", "payload", n.Payload)
				continue
			}
			l.publishCaption(c)
			continue
		}
		ev, err := asr.ParseEvent([]byte(n.Payload))
		if err != nil {
			l.logger.Warn("ignoring malformed event", "payload", n.Payload)
			continue
		}
		l.publish(ev)
	}
}

type subscription struct {
	l    *Listener
	c    chan asr.Event
	once sync.Once
}

func (s *subscription) C() <-chan asr.Event { return s.c }

func (s *subscription) Close() { s.once.Do(func() { s.l.unsubscribe(s) }) }
