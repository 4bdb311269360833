package asr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Live-session error codes, sent in WebSocket error messages only.
const (
	ENOLIVEWORKER    = "no_live_worker"
	ETOOMANYSESSIONS = "too_many_sessions"
	EWORKERLOST      = "worker_lost"
	// ESERVERRESTARTING: the gateway is stopping; the client may reconnect
	// (to the same address once it is back) and start a new session.
	ESERVERRESTARTING = "server_restarting"
)

// Live jobs: one asr.live_session job per session on queue live.
const (
	JobLiveSession  = "asr.live_session"
	QueueLive       = "live"
	LiveJobPriority = 40
	LiveSampleRate  = 16000
	LiveChunkBytes  = 19200 // 600 ms of 16 kHz PCM16
	LiveDefaultMode = "2pass"
)

// Live modes, as in FunASR's protocol.
const (
	LiveModeOnline  = "online"
	LiveModeOffline = "offline"
	LiveMode2Pass   = "2pass"
)

// LiveConfig is the first (JSON) message of a FunASR WebSocket client.
type LiveConfig struct {
	Mode          string
	WavName       string
	WavFormat     string // "pcm" or "wav"
	AudioFS       int    // 16000 or 8000
	ChunkSize     []int
	ChunkInterval int
	Hotwords      string
	ITN           bool
}

// ParseLiveConfig decodes and validates a FunASR configuration message.
// Returns EINVALID for malformed JSON, and EUNSUPPORTEDMEDIA for an unknown
// mode or format or an unsupported sample rate.
func ParseLiveConfig(b []byte) (*LiveConfig, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, Errorf(EINVALID, "The first message must be a JSON object with the session's configuration (FunASR protocol).")
	}
	c := &LiveConfig{Mode: LiveDefaultMode, WavFormat: "pcm", AudioFS: LiveSampleRate,
		ChunkSize: []int{5, 10, 5}, ChunkInterval: 10, ITN: true}
	str := func(key string) (string, bool, error) {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false, Errorf(EINVALID, "Configuration field %q must be a string.", key)
		}
		return s, true, nil
	}
	if s, ok, err := str("mode"); err != nil {
		return nil, err
	} else if ok && s != "" {
		if s != LiveModeOnline && s != LiveModeOffline && s != LiveMode2Pass {
			return nil, Errorf(EUNSUPPORTEDMEDIA, "Unknown mode %q: use online, offline or 2pass.", truncate(s, 32))
		}
		c.Mode = s
	}
	if s, _, err := str("wav_name"); err != nil {
		return nil, err
	} else {
		c.WavName = cleanText(s, 255)
	}
	if s, ok, err := str("wav_format"); err != nil {
		return nil, err
	} else if ok && s != "" {
		switch strings.ToLower(s) {
		case "pcm":
			c.WavFormat = "pcm"
		case "wav":
			c.WavFormat = "wav"
		default:
			return nil, Errorf(EUNSUPPORTEDMEDIA, "Unsupported wav_format %q: send 16-bit PCM (pcm, or wav with its header).", truncate(s, 32))
		}
	}
	if v, ok := raw["audio_fs"]; ok && string(v) != "null" {
		n, err := jsonInt(v)
		if err != nil || (n != 16000 && n != 8000) {
			return nil, Errorf(EUNSUPPORTEDMEDIA, "Unsupported audio_fs %s: send 16000 or 8000 Hz audio.", truncate(string(v), 32))
		}
		c.AudioFS = n
	}
	if v, ok := raw["chunk_size"]; ok && string(v) != "null" {
		var cs []json.Number
		if err := json.Unmarshal(v, &cs); err != nil || len(cs) != 3 {
			return nil, Errorf(EINVALID, "chunk_size must be a list of three integers, e.g. [5, 10, 5].")
		}
		c.ChunkSize = make([]int, 3)
		for i, x := range cs {
			n, err := strconv.Atoi(x.String())
			if err != nil || n < 0 || n > 1000 {
				return nil, Errorf(EINVALID, "chunk_size must be a list of three integers, e.g. [5, 10, 5].")
			}
			c.ChunkSize[i] = n
		}
	}
	if v, ok := raw["chunk_interval"]; ok && string(v) != "null" {
		n, err := jsonInt(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, Errorf(EINVALID, "chunk_interval must be a positive integer.")
		}
		c.ChunkInterval = n
	}
	if v, ok := raw["hotwords"]; ok && string(v) != "null" {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			c.Hotwords = s
		} else {
			// Some clients send the hotword map itself rather than its JSON string.
			c.Hotwords = string(bytes.TrimSpace(v))
		}
		if len(c.Hotwords) > 64<<10 {
			return nil, Errorf(EINVALID, "hotwords is too long.")
		}
		c.Hotwords = cleanText(c.Hotwords, 64<<10)
	}
	if v, ok := raw["itn"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &c.ITN); err != nil {
			return nil, Errorf(EINVALID, "itn must be true or false.")
		}
	}
	return c, nil
}

// cleanText makes s storable in a PostgreSQL text column: invalid UTF-8 and
// NUL removed, at most n bytes, cut at a rune boundary.
func cleanText(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func jsonInt(v json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
		n = json.Number(s)
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || f != float64(int(f)) {
		return 0, fmt.Errorf("not an integer")
	}
	return int(f), nil
}

// IsEndOfSpeech reports whether a text message after the configuration is
// FunASR's {"is_speaking": false}. ok is false for malformed JSON.
func IsEndOfSpeech(b []byte) (end bool, ok bool) {
	var m struct {
		IsSpeaking *bool `json:"is_speaking"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return false, false
	}
	return m.IsSpeaking != nil && !*m.IsSpeaking, true
}

// LiveSession is one live-captioning session; its id is also its
// transcription's id.
type LiveSession struct {
	ID            uuid.UUID
	Mode          string
	WavName       string
	AudioFS       int
	ChunkSize     []int
	ChunkInterval int
	Hotwords      string
	ITN           bool
	State         string
	Chunks        int
	ClientAddr    string
	JobID         int64
	CreatedAt     time.Time
}

// LiveSessionCreate is what the gateway stores when a session starts.
type LiveSessionCreate struct {
	ID         uuid.UUID
	Config     LiveConfig
	Filename   string
	ClientAddr string
}

// LiveSessionEnd is what the gateway records when a session's audio ends.
type LiveSessionEnd struct {
	ID        uuid.UUID
	Chunks    int
	AudioKey  string
	AudioSize int64
	DurationS float64
}

// LiveService stores live sessions and their audio chunks.
type LiveService interface {
	// LiveWorkerAvailable reports whether an active worker serves queue live.
	LiveWorkerAvailable(ctx context.Context, timeout time.Duration) (bool, error)
	// CreateLiveSession inserts the transcription, the session and its
	// asr.live_session job in one transaction.
	CreateLiveSession(ctx context.Context, c *LiveSessionCreate) (*LiveSession, error)
	// AddLiveChunk inserts one chunk of 16 kHz PCM16.
	AddLiveChunk(ctx context.Context, id uuid.UUID, seq int, pcm []byte, isLast bool) error
	// EndLiveSession marks the session ended and records its stored audio.
	EndLiveSession(ctx context.Context, e *LiveSessionEnd) error
	// LostLiveSessions returns those of ids whose worker stopped heartbeating
	// for timeout.
	LostLiveSessions(ctx context.Context, ids []uuid.UUID, timeout time.Duration) ([]uuid.UUID, error)
}

// LiveAudioKey returns the storage key of a live session's audio:
// live/YYYY/MM/DD/<id>.wav, in UTC.
func LiveAudioKey(id uuid.UUID, t time.Time) string {
	t = t.UTC()
	return path.Join("live", fmt.Sprintf("%04d", t.Year()), fmt.Sprintf("%02d", int(t.Month())),
		fmt.Sprintf("%02d", t.Day()), id.String()+".wav")
}

// AudioSink is a WAV file being written progressively.
type AudioSink interface {
	// Write appends PCM16 samples.
	Write(p []byte) (int, error)
	// Size returns the file's size so far, header included.
	Size() int64
	// Close fixes the header up and closes the file.
	Close() error
}

// LiveAudioStore creates WAV files written while a session runs.
type LiveAudioStore interface {
	// CreateWAV creates a mono PCM16 WAV file at key.
	CreateWAV(key string, sampleRate int) (AudioSink, error)
	// Delete removes the file at key; a missing file is not an error.
	Delete(key string) error
}

// Caption is one message from a worker to a live session's client.
type Caption struct {
	SessionID uuid.UUID
	// Msg is the message sent verbatim to the client.
	Msg json.RawMessage
	// Partial is true for messages whose mode ends in "online": they may be
	// dropped for a slow client.
	Partial bool
	// Final is true for the session's last message (is_final).
	Final bool
	// Received is when the gateway received the notification, for the
	// caption latency metric; zero for captions the gateway made itself.
	Received time.Time
}

// ParseCaption decodes an asr_captions payload {"session_id", "msg"}.
func ParseCaption(payload []byte) (Caption, error) {
	var p struct {
		SessionID string          `json:"session_id"`
		Msg       json.RawMessage `json:"msg"`
	}
	if err := json.Unmarshal(payload, &p); err != nil || len(p.Msg) == 0 || p.Msg[0] != '{' {
		return Caption{}, Errorf(EINVALID, "Malformed caption payload.")
	}
	id, err := uuid.Parse(p.SessionID)
	if err != nil {
		return Caption{}, Errorf(EINVALID, "Malformed caption session id.")
	}
	c := NewCaption(id, p.Msg)
	c.Received = time.Now()
	return c, nil
}

// NewCaption returns a caption for msg, classified by its mode and is_final.
func NewCaption(id uuid.UUID, msg json.RawMessage) Caption {
	var head struct {
		Mode    string `json:"mode"`
		IsFinal bool   `json:"is_final"`
		Error   any    `json:"error"`
	}
	_ = json.Unmarshal(msg, &head)
	return Caption{
		SessionID: id,
		Msg:       msg,
		Partial:   head.Error == nil && !head.IsFinal && strings.HasSuffix(head.Mode, "online"),
		Final:     head.IsFinal,
	}
}

// CaptionQueue is a live socket's bounded queue of captions: when full, the
// oldest partial is dropped; finals and errors are never dropped.
type CaptionQueue struct {
	mu      sync.Mutex
	max     int
	msgs    []Caption
	ready   chan struct{}
	dropped int
}

// NewCaptionQueue returns a queue holding up to max partials.
func NewCaptionQueue(max int) *CaptionQueue {
	return &CaptionQueue{max: max, ready: make(chan struct{}, 1)}
}

// Push appends c without blocking.
func (q *CaptionQueue) Push(c Caption) {
	q.mu.Lock()
	if len(q.msgs) >= q.max {
		for i, m := range q.msgs {
			if m.Partial {
				q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
				q.dropped++
				break
			}
		}
	}
	q.msgs = append(q.msgs, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value after Push.
func (q *CaptionQueue) Ready() <-chan struct{} { return q.ready }

// Take removes and returns the waiting captions, oldest first.
func (q *CaptionQueue) Take() []Caption {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// Dropped returns how many partials were dropped.
func (q *CaptionQueue) Dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// CaptionService delivers the captions of one session to a queue.
type CaptionService interface {
	// SubscribeCaptions pushes every caption of session id to q until the
	// returned function is called.
	SubscribeCaptions(id uuid.UUID, q *CaptionQueue) (unsubscribe func())
}
