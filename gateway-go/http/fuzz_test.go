package http

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/audiocheck"
	"github.com/lanasr/lanasr/gateway-go/storage"
)

// The fuzz targets run without PostgreSQL: these in-memory services record
// what the handlers hand to the database layer.

type memLive struct {
	mu     sync.Mutex
	chunks [][]byte
	last   int
	ended  bool
}

func (m *memLive) LiveWorkerAvailable(context.Context, time.Duration) (bool, error) { return true, nil }
func (m *memLive) CreateLiveSession(_ context.Context, c *asr.LiveSessionCreate) (*asr.LiveSession, error) {
	return &asr.LiveSession{ID: c.ID}, nil
}
func (m *memLive) AddLiveChunk(_ context.Context, _ uuid.UUID, seq int, pcm []byte, isLast bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq != len(m.chunks) {
		return fmt.Errorf("chunk %d after %d chunks", seq, len(m.chunks))
	}
	m.chunks = append(m.chunks, bytes.Clone(pcm))
	if isLast {
		m.last++
	}
	return nil
}
func (m *memLive) EndLiveSession(context.Context, *asr.LiveSessionEnd) error {
	m.ended = true
	return nil
}
func (m *memLive) LostLiveSessions(context.Context, []uuid.UUID, time.Duration) ([]uuid.UUID, error) {
	return nil, nil
}

type memSink struct{ n int64 }

func (s *memSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *memSink) Size() int64                 { return 44 + s.n }
func (s *memSink) Close() error                { return nil }

// FuzzLiveFrames feeds a configuration and arbitrary binary frames through a
// live session's audio path (WAV header stripping, odd bytes carried across
// frames, 8 kHz upsampling, 600 ms chunking) and checks that every byte
// stored is accounted for in whole chunks.
func FuzzLiveFrames(f *testing.F) {
	wav := func(rate uint32, pcm []byte) []byte {
		var b bytes.Buffer
		b.WriteString("RIFF")
		_ = binary.Write(&b, binary.LittleEndian, uint32(36+len(pcm)))
		b.WriteString("WAVEfmt ")
		_ = binary.Write(&b, binary.LittleEndian, []any{uint32(16), uint16(1), uint16(1), rate, rate * 2, uint16(2), uint16(16)})
		b.WriteString("data")
		_ = binary.Write(&b, binary.LittleEndian, uint32(len(pcm)))
		b.Write(pcm)
		return b.Bytes()
	}
	pcm := bytes.Repeat([]byte{1, 2, 3, 4, 0xff, 0x7f, 0, 0x80}, 5000)
	f.Add(`{"mode":"2pass","audio_fs":16000}`, pcm, uint16(3200))
	f.Add(`{"mode":"online","audio_fs":8000}`, pcm, uint16(321))
	f.Add(`{"wav_format":"wav"}`, wav(16000, pcm), uint16(7))
	f.Add(`{"wav_format":"wav","audio_fs":8000}`, wav(8000, pcm[:999]), uint16(1000))
	f.Add(`{"wav_format":"wav"}`, []byte("RIFF\x00\x00\x00\x00WAVEjunk\xff\xff\xff\x7f"), uint16(3))
	f.Add(`{"wav_format":"wav"}`, []byte("RIFX"), uint16(1))
	f.Add(`{"wav_format":"wav"}`, wav(44100, pcm[:100]), uint16(64))
	s := NewServer()
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, config string, audio []byte, frame uint16) {
		cfg, err := asr.ParseLiveConfig([]byte(config))
		if err != nil {
			return
		}
		live := &memLive{}
		s.LiveService = live
		lc := &liveConn{s: s, q: asr.NewCaptionQueue(4), done: make(chan struct{})}
		sink := &memSink{}
		ls := &liveSession{lc: lc, id: uuid.New(), cfg: cfg, fs: cfg.AudioFS, sink: sink}
		size := max(int(frame), 1)
		for len(audio) > 0 {
			n := min(size, len(audio))
			if err := ls.audio(audio[:n]); err != nil {
				if asr.ErrorCode(err) != asr.EUNSUPPORTEDMEDIA {
					t.Fatalf("frame error %v", err)
				}
				break
			}
			audio = audio[n:]
		}
		ls.end()
		ls.end() // ends once
		var total int64
		for i, c := range live.chunks {
			if len(c)%2 != 0 {
				t.Fatalf("chunk %d has an odd length %d", i, len(c))
			}
			if i < len(live.chunks)-1 && len(c) != asr.LiveChunkBytes {
				t.Fatalf("chunk %d has %d bytes", i, len(c))
			}
			total += int64(len(c))
		}
		if live.last != 1 || !live.ended {
			t.Fatalf("last chunks %d, ended %v", live.last, live.ended)
		}
		if total != sink.n || total != ls.data {
			t.Fatalf("chunks hold %d bytes, the WAV %d, the session counted %d", total, sink.n, ls.data)
		}
	})
}

// memTasks is a TaskService that keeps created tasks in memory.
type memTasks struct {
	asr.TaskService
	mu      sync.Mutex
	created []*asr.TaskCreate
}

func (m *memTasks) CreateTask(_ context.Context, c *asr.TaskCreate) (*asr.SubmitReceipt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.created = append(m.created, c)
	return &asr.SubmitReceipt{Task: &asr.Task{ID: c.ID, Status: asr.StatusQueued}, Position: 1}, nil
}

// uploadStatuses are the answers an upload may get; anything else (a 500
// above all) is a bug.
var uploadStatuses = map[int]bool{202: true, 400: true, 408: true, 413: true, 415: true, 422: true}

// FuzzUpload posts arbitrary multipart bodies to POST /api/v1/asr/submit
// through the real audio store and sniffer: the answer is always a client
// error or 202, a refused upload leaves no file, and an accepted one leaves
// exactly its file under a server-made key with a display-only file name.
func FuzzUpload(f *testing.F) {
	var w bytes.Buffer
	w.WriteString("RIFF")
	_ = binary.Write(&w, binary.LittleEndian, uint32(36+3200))
	w.WriteString("WAVEfmt ")
	_ = binary.Write(&w, binary.LittleEndian, []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)})
	w.WriteString("data")
	_ = binary.Write(&w, binary.LittleEndian, uint32(3200))
	w.Write(make([]byte, 3200))
	wav := w.Bytes()
	body := func(field, filename string, content []byte, fields ...string) []byte {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		_ = mw.SetBoundary("fuzzboundary")
		for i := 0; i+1 < len(fields); i += 2 {
			_ = mw.WriteField(fields[i], fields[i+1])
		}
		fw, _ := mw.CreateFormFile(field, filename)
		_, _ = fw.Write(content)
		_ = mw.Close()
		return b.Bytes()
	}
	f.Add(body("audio", "a.wav", wav, "language", "en", "priority", "3"))
	f.Add(body("audio", "../../etc/passwd", wav))
	f.Add(body("file", strings.Repeat("x", 1000)+".wav", wav, "hotwords", "a\x00b"))
	f.Add(body("audio", "a.wav", wav[:50]))
	f.Add(body("audio", "a.png", []byte("\x89PNG\r\n\x1a\n0000")))
	f.Add(body("audio", "a.wav", nil))
	f.Add(body("other", "a.wav", wav))
	f.Add(body("audio", "a.wav", wav, "language", "\xff\xfe"))
	f.Add([]byte("--fuzzboundary\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a\\\"b\"\r\n\r\nRIFF"))
	f.Add([]byte("--fuzzboundary--\r\n"))
	// One server and store for every input (the fuzzer runs inputs one at a
	// time per process); each accepted file is removed after its checks.
	dir := f.TempDir()
	store, err := storage.New(dir)
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer()
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.AudioStore = store
	s.CheckAudio = audiocheck.Check
	s.MaxUploadBytes = 1 << 20
	f.Fuzz(func(t *testing.T, raw []byte) {
		tasks := &memTasks{}
		s.TaskService = tasks
		defer func() {
			for _, c := range tasks.created {
				_ = store.Delete(c.AudioKey)
			}
		}()

		req := httptest.NewRequest(http.MethodPost, "/api/v1/asr/submit", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=fuzzboundary")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)

		if !uploadStatuses[rec.Code] {
			t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
		var files []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				files = append(files, filepath.ToSlash(rel))
			}
			return nil
		})
		if rec.Code != http.StatusAccepted {
			if len(files) != 0 || len(tasks.created) != 0 {
				t.Fatalf("refused upload (%d) left files %v and %d tasks", rec.Code, files, len(tasks.created))
			}
			return
		}
		if len(tasks.created) != 1 || len(files) != 1 || files[0] != tasks.created[0].AudioKey {
			t.Fatalf("accepted upload: files %v, tasks %d", files, len(tasks.created))
		}
		c := tasks.created[0]
		if !asr.ValidAudioKey(c.AudioKey) || !strings.HasPrefix(c.AudioKey, "uploads/") {
			t.Fatalf("audio key %q", c.AudioKey)
		}
		name := c.Filename
		if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." ||
			!utf8.ValidString(name) || utf8.RuneCountInString(name) > 200 {
			t.Fatalf("file name %q", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("file name %q has control or format characters", name)
			}
		}
		for _, v := range []string{c.Hotwords, c.LanguageRequested} {
			if !validText(v) {
				t.Fatalf("text %q that PostgreSQL refuses", v)
			}
		}
	})
}

// countingLive counts sessions created and ended, across sockets.
type countingLive struct {
	memLive
	mu      sync.Mutex
	created map[uuid.UUID]bool
	ended   map[uuid.UUID]bool
}

func (m *countingLive) CreateLiveSession(_ context.Context, c *asr.LiveSessionCreate) (*asr.LiveSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !utf8.ValidString(c.Filename) || strings.ContainsRune(c.Filename, 0) || !utf8.ValidString(c.Config.Hotwords) {
		return nil, fmt.Errorf("text PostgreSQL refuses: %q", c.Filename)
	}
	m.created[c.ID] = true
	return &asr.LiveSession{ID: c.ID}, nil
}

func (m *countingLive) AddLiveChunk(context.Context, uuid.UUID, int, []byte, bool) error { return nil }

func (m *countingLive) EndLiveSession(_ context.Context, e *asr.LiveSessionEnd) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended[e.ID] {
		return fmt.Errorf("session %s ended twice", e.ID)
	}
	m.ended[e.ID] = true
	return nil
}

type memLiveStore struct{}

func (memLiveStore) CreateWAV(string, int) (asr.AudioSink, error) { return &memSink{}, nil }
func (memLiveStore) Delete(string) error                          { return nil }

type noCaptions struct{}

func (noCaptions) SubscribeCaptions(uuid.UUID, *asr.CaptionQueue) func() { return func() {} }

// FuzzLiveSocket plays arbitrary message sequences on a real WebSocket: the
// first byte of each record chooses text or binary, the second its length.
// Whatever the client sends, the gateway must not panic, every session it
// starts must end exactly once, and the socket must be released.
func FuzzLiveSocket(f *testing.F) {
	rec := func(binary bool, payload []byte) []byte {
		kind := byte(0)
		if binary {
			kind = 1
		}
		return append([]byte{kind, byte(len(payload))}, payload...)
	}
	cfg := []byte(`{"mode":"2pass","wav_name":"a","audio_fs":16000,"is_speaking":true}`)
	pcm := bytes.Repeat([]byte{1, 0}, 120)
	end := []byte(`{"is_speaking":false}`)
	join := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	f.Add(join(rec(false, cfg), rec(true, pcm), rec(true, pcm[:3]), rec(false, end)))
	f.Add(join(rec(true, pcm)))
	f.Add(join(rec(false, []byte(`{oops`))))
	f.Add(join(rec(false, cfg), rec(false, end), rec(false, cfg), rec(true, pcm), rec(false, end)))
	f.Add(join(rec(false, []byte(`{"wav_format":"wav","audio_fs":8000}`)), rec(true, []byte("RIFF\x24\x00\x00\x00WAVEfmt ")), rec(true, pcm)))
	f.Add(join(rec(false, []byte(`{"mode":"2pass","wav_name":"a\u0000\xff"}`)), rec(false, []byte(`[]`))))
	f.Add(join(rec(false, []byte(`{"mode":"offline","audio_fs":44100}`))))

	live := &countingLive{created: map[uuid.UUID]bool{}, ended: map[uuid.UUID]bool{}}
	s := NewServer()
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.LiveService = live
	s.LiveStore = memLiveStore{}
	s.CaptionService = noCaptions{}
	s.LiveFinalWait = 50 * time.Millisecond
	s.WSIdleTimeout = 2 * time.Second
	s.WSMaxFrameBytes = 200
	s.LiveMaxPerClient = 0
	ts := httptest.NewServer(s)
	f.Cleanup(ts.Close)
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/asr/stream"

	f.Fuzz(func(t *testing.T, script []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // drain what the gateway sends
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		for len(script) >= 2 {
			typ := websocket.MessageText
			if script[0]&1 == 1 {
				typ = websocket.MessageBinary
			}
			n := min(int(script[1]), len(script)-2)
			if err := c.Write(ctx, typ, script[2:2+n]); err != nil {
				break
			}
			script = script[2+n:]
		}
		c.Close(websocket.StatusNormalClosure, "") //nolint:errcheck
		deadline := time.Now().Add(4 * time.Second)
		for s.LiveSessions() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d sockets still open after the client left", s.LiveSessions())
			}
			time.Sleep(time.Millisecond)
		}
		live.mu.Lock()
		defer live.mu.Unlock()
		for id := range live.created {
			if !live.ended[id] {
				t.Fatalf("session %s never ended", id)
			}
		}
	})
}
