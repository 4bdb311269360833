package http

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
)

// captionQueueSize is how many captions wait for a slow client before the
// oldest partials are dropped.
const captionQueueSize = 64

// liveWriteTimeout bounds one write to a live socket.
const liveWriteTimeout = 10 * time.Second

// errFrameTooBig is returned by liveConn.read for a frame over the limit.
var errFrameTooBig = errors.New("frame too big")

// isWebSocketUpgrade reports whether r asks to upgrade to a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// liveRegistry tracks the open live sockets for the limit, and the open
// sessions for the worker-loss poll.
type liveRegistry struct {
	mu       sync.Mutex
	sessions map[uuid.UUID]*liveSession
	// perClient counts the open sockets of each remote IP.
	perClient map[string]int
	open      atomic.Int64
	wg        sync.WaitGroup
	pollOnce  sync.Once
	// conns are the open sockets, told when the gateway shuts down.
	conns map[*liveConn]struct{}
}

// track adds (or, with add false, removes) an open socket.
func (l *liveRegistry) track(lc *liveConn, add bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !add {
		delete(l.conns, lc)
		return
	}
	if l.conns == nil {
		l.conns = make(map[*liveConn]struct{})
	}
	l.conns[lc] = struct{}{}
}

// restartAll tells every open socket that the gateway is restarting and
// starts its close handshake, waiting at most wait for them. Their read loops
// then end their sessions normally (audio kept).
func (l *liveRegistry) restartAll(wait time.Duration) {
	l.mu.Lock()
	conns := make([]*liveConn, 0, len(l.conns))
	for lc := range l.conns {
		conns = append(conns, lc)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, lc := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); lc.restarting() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// acquire counts one more socket for ip, unless it already has limit open
// (0: no limit).
func (l *liveRegistry) acquire(ip string, limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit > 0 && l.perClient[ip] >= limit {
		return false
	}
	if l.perClient == nil {
		l.perClient = make(map[string]int)
	}
	l.perClient[ip]++
	return true
}

// release forgets one socket of ip.
func (l *liveRegistry) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perClient[ip]--; l.perClient[ip] <= 0 {
		delete(l.perClient, ip)
	}
}

func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	if s.LiveService == nil || s.CaptionService == nil || s.LiveStore == nil {
		s.Error(w, r, asr.Errorf(asr.EUNAVAILABLE, "Live sessions are not enabled on this gateway."))
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"binary"},
		// LAN clients, and FunASR's HTML5 client opened from file://.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered.
	}
	s.live.wg.Add(1)
	defer s.live.wg.Done()
	s.live.pollOnce.Do(func() { go s.pollLiveWorkers() })
	c.SetReadLimit(-1) // liveConn.read applies the limit, so the client gets a message first.
	lc := &liveConn{s: s, c: c, remote: r.RemoteAddr, ip: clientIP(r), done: make(chan struct{})}
	s.live.track(lc, true)
	defer s.live.track(lc, false)
	lc.run()
}

// liveConn is one FunASR-protocol socket. It carries one session at a time;
// FunASR's Python client sends several files over one socket, each with its
// configuration, audio and end of speech, so a configuration after the end
// of speech starts a new session.
type liveConn struct {
	s      *Server
	c      *websocket.Conn
	remote string
	ip     string
	done   chan struct{}
	// q receives the captions of every session of the socket.
	q *asr.CaptionQueue
	// cur is the session receiving audio, or the last one.
	cur atomic.Pointer[liveSession]
	// all are the socket's sessions, current one last.
	all []*liveSession
	// told is set once the client has been told the gateway is restarting.
	told atomic.Bool
}

// liveSession is one session's audio state; only the socket's read loop
// touches it, but for ended and lostSent.
type liveSession struct {
	lc          *liveConn
	id          uuid.UUID
	cfg         *asr.LiveConfig
	sink        asr.AudioSink
	key         string
	fs          int
	hdr         []byte // wav_format "wav": bytes until the RIFF header is stripped
	hdrDone     bool
	carry       []byte // an odd byte left from the previous frame
	up          upsampler
	pending     []byte
	seq         int
	data        int64 // bytes of 16 kHz PCM received
	unsubscribe func()
	ended       atomic.Bool
	lostSent    atomic.Bool
}

func (lc *liveConn) tooBig() {
	lc.fail(asr.ETOOLARGE, fmt.Sprintf("A message is larger than the limit of %d KiB.", lc.s.WSMaxFrameBytes>>10), websocket.StatusMessageTooBig)
}

func (lc *liveConn) run() {
	s := lc.s
	defer lc.c.CloseNow() //nolint:errcheck
	if n := s.live.open.Add(1); s.LiveMaxSessions > 0 && n > int64(s.LiveMaxSessions) {
		s.live.open.Add(-1)
		lc.fail(asr.ETOOMANYSESSIONS, fmt.Sprintf("This gateway already has %d live sessions; try again later.", s.LiveMaxSessions),
			websocket.StatusTryAgainLater)
		return
	}
	defer s.live.open.Add(-1)
	if !s.live.acquire(lc.ip, s.LiveMaxPerClient) {
		lc.fail(asr.ETOOMANYSESSIONS, fmt.Sprintf("This client already has %d live sessions open; close one and try again.", s.LiveMaxPerClient),
			websocket.StatusTryAgainLater)
		return
	}
	defer s.live.release(lc.ip)

	// The configuration.
	typ, msg, err := lc.read(s.WSIdleTimeout)
	if errors.Is(err, errFrameTooBig) {
		lc.tooBig()
		return
	} else if err != nil {
		lc.restartingIfClosing()
		return
	}
	if typ != websocket.MessageText {
		lc.fail(asr.EINVALID, "Send the JSON configuration message before any audio (FunASR protocol).", websocket.StatusPolicyViolation)
		return
	}
	lc.q = asr.NewCaptionQueue(captionQueueSize)
	defer lc.stop()
	if !lc.begin(msg) {
		return
	}
	go lc.forward()

	// Audio until is_speaking=false, then captions until is_final, unless a
	// new configuration starts the next session.
	var finalTimer *time.Timer
	defer func() {
		if finalTimer != nil {
			finalTimer.Stop()
		}
	}()
	for {
		ls := lc.cur.Load()
		idle := s.WSIdleTimeout
		if ls.ended.Load() {
			idle = 0 // the final-wait timer bounds the socket now
		}
		typ, msg, err := lc.read(idle)
		if errors.Is(err, errFrameTooBig) {
			ls.end()
			lc.tooBig()
			return
		} else if err != nil {
			ls.end() // the client went away, idled out, or the gateway is stopping
			lc.restartingIfClosing()
			return
		}
		if typ == websocket.MessageBinary {
			if ls.ended.Load() {
				continue
			}
			if err := ls.audio(msg); err != nil {
				ls.end()
				lc.failErr(err)
				return
			}
			continue
		}
		end, ok := asr.IsEndOfSpeech(msg)
		if !ok {
			ls.end()
			lc.fail(asr.EINVALID, "A text message is not valid JSON.", websocket.StatusPolicyViolation)
			return
		}
		if end && !ls.ended.Load() {
			ls.end()
			finalTimer = time.AfterFunc(s.LiveFinalWait, func() {
				lc.c.Close(websocket.StatusNormalClosure, "") //nolint:errcheck
			})
		} else if !end && ls.ended.Load() && isConfig(msg) {
			if finalTimer != nil {
				finalTimer.Stop()
				finalTimer = nil
			}
			if !lc.begin(msg) {
				return
			}
		}
	}
}

// isConfig reports whether a text message after an end of speech starts a
// new utterance: it says is_speaking true or names a mode.
func isConfig(b []byte) bool {
	var m struct {
		IsSpeaking *bool   `json:"is_speaking"`
		Mode       *string `json:"mode"`
	}
	return json.Unmarshal(b, &m) == nil && ((m.IsSpeaking != nil && *m.IsSpeaking) || m.Mode != nil)
}

// begin validates a configuration and starts its session; on failure it has
// told the client and closed the socket.
func (lc *liveConn) begin(msg []byte) bool {
	s := lc.s
	cfg, err := asr.ParseLiveConfig(msg)
	if err != nil {
		status := websocket.StatusUnsupportedData
		if asr.ErrorCode(err) == asr.EINVALID {
			status = websocket.StatusPolicyViolation
		}
		lc.fail(asr.ErrorCode(err), asr.ErrorMessage(err), status)
		return false
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, 10*time.Second)
	ok, err := s.LiveService.LiveWorkerAvailable(ctx, s.WorkerTimeout)
	cancel()
	if err != nil {
		lc.failErr(err)
		return false
	} else if !ok {
		lc.fail(asr.ENOLIVEWORKER, "no worker is serving live sessions; start a worker with the live queue and try again.",
			websocket.StatusTryAgainLater)
		return false
	}
	ls := &liveSession{lc: lc, cfg: cfg, fs: cfg.AudioFS}
	if err := ls.start(); err != nil {
		lc.failErr(err)
		return false
	}
	lc.all = append(lc.all, ls)
	lc.cur.Store(ls)
	return true
}

// read reads one message within idle (no limit when 0). A message larger
// than WSMaxFrameBytes returns errFrameTooBig.
func (lc *liveConn) read(idle time.Duration) (websocket.MessageType, []byte, error) {
	ctx, cancel := lc.s.baseCtx, context.CancelFunc(func() {})
	if idle > 0 {
		ctx, cancel = context.WithTimeout(ctx, idle)
	}
	defer cancel()
	typ, r, err := lc.c.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, lc.s.WSMaxFrameBytes+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(b)) > lc.s.WSMaxFrameBytes {
		return 0, nil, errFrameTooBig
	}
	return typ, b, nil
}

// fail sends an error message and closes the socket with status.
func (lc *liveConn) fail(code, msg string, status websocket.StatusCode) {
	lc.s.metrics.errors.WithLabelValues(code).Inc()
	b, _ := json.Marshal(&ErrorResponse{Error: msg, Code: code})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = lc.c.Write(ctx, websocket.MessageText, b)
	_ = lc.c.Close(status, code)
}

// restartingIfClosing tells the client that the gateway is restarting when
// it is shutting down (a socket that Close did not reach in time).
func (lc *liveConn) restartingIfClosing() {
	select {
	case <-lc.s.shutdown:
		lc.restarting()
	default:
	}
}

// restarting tells the client, once, that the gateway is shutting down (close
// 1012, service restart); the read loop then ends the session normally with
// its audio kept, so the client can reconnect and start a new session.
func (lc *liveConn) restarting() {
	if lc.told.Swap(true) {
		return
	}
	lc.fail(asr.ESERVERRESTARTING, "the gateway is restarting; audio received so far is kept; reconnect to start a new session",
		websocket.StatusServiceRestart)
}

// failErr sends err as an error message, closing 1013 when the database is
// unavailable and 1011 for anything else.
func (lc *liveConn) failErr(err error) {
	code := asr.ErrorCode(err)
	if code == asr.EINTERNAL {
		lc.s.logger().Error("live session", "error", err)
	}
	status := websocket.StatusInternalError
	if code == asr.EUNAVAILABLE {
		status = websocket.StatusTryAgainLater
	}
	lc.fail(code, asr.ErrorMessage(err), status)
}

// stop ends the current session if needed, stops forwarding captions and
// forgets the socket's sessions.
func (lc *liveConn) stop() {
	if ls := lc.cur.Load(); ls != nil {
		ls.end()
	}
	close(lc.done)
	s := lc.s
	s.metrics.droppedPartials.Add(float64(lc.q.Dropped()))
	s.live.mu.Lock()
	for _, ls := range lc.all {
		delete(s.live.sessions, ls.id)
	}
	s.live.mu.Unlock()
	for _, ls := range lc.all {
		ls.unsubscribe()
	}
}

// forward writes captions to the socket until it closes; after the client's
// end of speech, the current session's final caption closes the socket
// normally.
func (lc *liveConn) forward() {
	for {
		select {
		case <-lc.done:
			return
		case <-lc.q.Ready():
		}
		for _, m := range lc.q.Take() {
			ctx, cancel := context.WithTimeout(context.Background(), liveWriteTimeout)
			err := lc.c.Write(ctx, websocket.MessageText, m.Msg)
			cancel()
			if err != nil {
				return
			}
			if !m.Received.IsZero() {
				lc.s.metrics.captionLatency.Observe(time.Since(m.Received).Seconds())
			}
			if cur := lc.cur.Load(); m.Final && cur != nil && cur.id == m.SessionID && cur.ended.Load() {
				_ = lc.c.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	}
}

// start creates the session's WAV file, rows and job, and subscribes to its
// captions.
func (ls *liveSession) start() error {
	lc := ls.lc
	s := lc.s
	ls.id = uuid.New()
	now := time.Now()
	ls.key = asr.LiveAudioKey(ls.id, now)
	sink, err := s.LiveStore.CreateWAV(ls.key, asr.LiveSampleRate)
	if err != nil {
		return err
	}
	// Subscribe before the job exists, so no caption can be missed.
	ls.unsubscribe = s.CaptionService.SubscribeCaptions(ls.id, lc.q)
	filename := ls.cfg.WavName
	if filename == "" {
		filename = "live-" + now.UTC().Format("20060102-150405") + ".wav"
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, 10*time.Second)
	defer cancel()
	_, err = s.LiveService.CreateLiveSession(ctx, &asr.LiveSessionCreate{
		ID: ls.id, Config: *ls.cfg, Filename: filename, ClientAddr: lc.remote,
	})
	if err != nil {
		ls.unsubscribe()
		_ = sink.Close()
		_ = s.LiveStore.Delete(ls.key)
		return err
	}
	ls.sink = sink
	s.live.mu.Lock()
	if s.live.sessions == nil {
		s.live.sessions = make(map[uuid.UUID]*liveSession)
	}
	s.live.sessions[ls.id] = ls
	s.live.mu.Unlock()
	s.logger().Info("live session started", "session", ls.id, "mode", ls.cfg.Mode, "audio_fs", ls.cfg.AudioFS,
		"wav_format", ls.cfg.WavFormat, "remote", lc.remote)
	return nil
}

// audio takes one binary frame: strips a WAV header, upsamples 8 kHz, and
// stores the samples in the WAV file and in 600 ms chunks.
func (ls *liveSession) audio(b []byte) error {
	if ls.cfg.WavFormat == "wav" && !ls.hdrDone {
		ls.hdr = append(ls.hdr, b...)
		pcm, fs, done, err := stripWAVHeader(ls.hdr)
		if err != nil {
			return err
		} else if !done {
			if len(ls.hdr) > 1<<20 {
				return asr.Errorf(asr.EUNSUPPORTEDMEDIA, "The WAV header is too long.")
			}
			return nil
		}
		ls.hdrDone, ls.hdr = true, nil
		if fs != 0 {
			ls.fs = fs
		}
		b = pcm
	}
	if len(ls.carry) > 0 {
		b = append(ls.carry, b...)
		ls.carry = nil
	}
	if len(b)%2 == 1 {
		ls.carry = []byte{b[len(b)-1]}
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil
	}
	if ls.fs == 8000 {
		b = ls.up.upsample(b)
	}
	if _, err := ls.sink.Write(b); err != nil {
		return fmt.Errorf("write live audio: %w", err)
	}
	ls.data += int64(len(b))
	if ls.pending == nil {
		ls.pending = make([]byte, 0, 2*asr.LiveChunkBytes)
	}
	ls.pending = append(ls.pending, b...)
	for len(ls.pending) >= asr.LiveChunkBytes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := ls.lc.s.LiveService.AddLiveChunk(ctx, ls.id, ls.seq, ls.pending[:asr.LiveChunkBytes], false)
		cancel()
		if err != nil {
			return err
		}
		ls.seq++
		n := copy(ls.pending, ls.pending[asr.LiveChunkBytes:])
		ls.pending = ls.pending[:n]
	}
	return nil
}

// end flushes the remaining audio as the last chunk, fixes the WAV file up
// and marks the session ended; it runs once.
func (ls *liveSession) end() {
	if ls.ended.Swap(true) {
		return
	}
	s := ls.lc.s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.LiveService.AddLiveChunk(ctx, ls.id, ls.seq, ls.pending, true); err != nil {
		s.logger().Error("live session: last chunk", "session", ls.id, "error", err)
	} else {
		ls.seq++
	}
	ls.pending = nil
	if err := ls.sink.Close(); err != nil {
		s.logger().Error("live session: closing audio", "session", ls.id, "error", err)
	}
	err := s.LiveService.EndLiveSession(ctx, &asr.LiveSessionEnd{
		ID: ls.id, Chunks: ls.seq, AudioKey: ls.key, AudioSize: ls.sink.Size(),
		DurationS: float64(ls.data) / float64(2*asr.LiveSampleRate),
	})
	if err != nil {
		s.logger().Error("live session: end", "session", ls.id, "error", err)
	}
	s.logger().Info("live session ended", "session", ls.id, "chunks", ls.seq, "audio_s",
		float64(ls.data)/float64(2*asr.LiveSampleRate), "dropped_partials", ls.lc.q.Dropped())
}

// pollLiveWorkers checks the open sessions' workers every LivePollInterval
// and sends each lost session's client one worker_lost message.
func (s *Server) pollLiveWorkers() {
	t := time.NewTicker(s.LivePollInterval)
	defer t.Stop()
	lost, _ := json.Marshal(&ErrorResponse{
		Error: "the worker transcribing this session stopped; audio received so far is kept",
		Code:  asr.EWORKERLOST,
	})
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
		}
		s.live.mu.Lock()
		ids := make([]uuid.UUID, 0, len(s.live.sessions))
		for id, ls := range s.live.sessions {
			if !ls.lostSent.Load() {
				ids = append(ids, id)
			}
		}
		s.live.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.baseCtx, 5*time.Second)
		gone, err := s.LiveService.LostLiveSessions(ctx, ids, s.WorkerTimeout)
		cancel()
		if err != nil {
			s.logger().Warn("live sessions: worker check failed", "error", err)
			continue
		}
		s.live.mu.Lock()
		for _, id := range gone {
			if ls := s.live.sessions[id]; ls != nil && !ls.lostSent.Swap(true) {
				s.logger().Warn("live session lost its worker", "session", id)
				ls.lc.q.Push(asr.Caption{SessionID: id, Msg: lost})
			}
		}
		s.live.mu.Unlock()
	}
}

// LiveSessions returns how many live sockets are open.
func (s *Server) LiveSessions() int { return int(s.live.open.Load()) }

// upsampler doubles the rate of PCM16 by linear interpolation, continuous
// across calls: each input sample x[n] gives (x[n-1]+x[n])/2 then x[n].
type upsampler struct {
	prev    int16
	started bool
}

func (u *upsampler) upsample(in []byte) []byte {
	out := make([]byte, 2*len(in))
	for i := 0; i+1 < len(in); i += 2 {
		x := int16(binary.LittleEndian.Uint16(in[i:]))
		if !u.started {
			u.prev, u.started = x, true
		}
		mid := int16((int32(u.prev) + int32(x)) / 2)
		binary.LittleEndian.PutUint16(out[2*i:], uint16(mid))
		binary.LittleEndian.PutUint16(out[2*i+2:], uint16(x))
		u.prev = x
	}
	return out
}

// stripWAVHeader parses a RIFF/WAVE header at the start of b. done is false
// while more bytes are needed; then pcm is what follows the data chunk's
// header and fs the header's sample rate. Bytes that do not start with RIFF
// are taken as raw PCM. Returns EUNSUPPORTEDMEDIA unless the format is mono
// 16-bit PCM at 16 or 8 kHz.
func stripWAVHeader(b []byte) (pcm []byte, fs int, done bool, err error) {
	if len(b) < 12 {
		if len(b) >= 4 && string(b[:4]) != "RIFF" {
			return b, 0, true, nil
		}
		return nil, 0, false, nil
	}
	if string(b[:4]) != "RIFF" {
		return b, 0, true, nil
	}
	if string(b[8:12]) != "WAVE" {
		return nil, 0, false, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "The audio is a RIFF file but not WAVE.")
	}
	off := 12
	for {
		if len(b) < off+8 {
			return nil, 0, false, nil
		}
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		if id == "data" {
			return b[body:], fs, true, nil
		}
		if size > 1<<20 {
			return nil, 0, false, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "The WAV header is malformed.")
		}
		if len(b) < body+size {
			return nil, 0, false, nil
		}
		if id == "fmt " {
			if size < 16 {
				return nil, 0, false, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "The WAV header is malformed.")
			}
			format := binary.LittleEndian.Uint16(b[body:])
			channels := binary.LittleEndian.Uint16(b[body+2:])
			rate := int(binary.LittleEndian.Uint32(b[body+4:]))
			bits := binary.LittleEndian.Uint16(b[body+14:])
			if (format != 1 && format != 0xFFFE) || channels != 1 || bits != 16 {
				return nil, 0, false, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "Send mono 16-bit PCM WAV audio.")
			}
			if rate != 16000 && rate != 8000 {
				return nil, 0, false, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "Unsupported WAV sample rate %d: send 16000 or 8000 Hz audio.", rate)
			}
			fs = rate
		}
		off = body + size + size%2
	}
}
