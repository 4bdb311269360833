package http_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

func addLiveWorker(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO workers (id, host, pid, device, engine, queues, state)
		VALUES ($1, 'test', 1, 'cpu', 'test', '{live,final}', 'idle')`, id)
	require.NoError(t, err)
}

func wsURL(b *testBundle, path string) string {
	return "ws" + strings.TrimPrefix(b.ts.URL, "http") + path
}

func dial(t *testing.T, b *testBundle, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(b, path), &websocket.DialOptions{Subprotocols: []string{"binary"}})
	require.NoError(t, err)
	require.Equal(t, "binary", resp.Header.Get("Sec-WebSocket-Protocol"))
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func sendJSON(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, c.Write(context.Background(), websocket.MessageText, b))
}

func config(extra map[string]any) map[string]any {
	m := map[string]any{"mode": "2pass", "wav_name": "jfk", "wav_format": "pcm", "audio_fs": 16000,
		"chunk_size": []int{5, 10, 5}, "chunk_interval": 10, "is_speaking": true, "hotwords": `{"JFK": 20}`, "itn": true}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// readMsg reads one text message as a map, failing after timeout.
func readMsg(t *testing.T, c *websocket.Conn, timeout time.Duration) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	require.Equal(t, websocket.MessageText, typ)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return m, nil
}

// expectError reads an error message with code, then the close status.
func expectError(t *testing.T, c *websocket.Conn, code string, status websocket.StatusCode) {
	t.Helper()
	m, err := readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, code, m["code"], m)
	require.NotEmpty(t, m["error"])
	require.Len(t, m, 2)
	_, err = readMsg(t, c, 5*time.Second)
	require.Equal(t, status, websocket.CloseStatus(err), "close: %v", err)
}

func jfkPCM(t *testing.T) []byte {
	t.Helper()
	b := dbtest.ReadSpeech(t, "jfk_en.wav")
	i := strings.Index(string(b[:4096]), "data")
	require.Positive(t, i)
	n := int(binary.LittleEndian.Uint32(b[i+4:]))
	return b[i+8 : i+8+n]
}

func sendPCM(t *testing.T, c *websocket.Conn, pcm []byte, frame int) {
	t.Helper()
	for off := 0; off < len(pcm); off += frame {
		require.NoError(t, c.Write(context.Background(), websocket.MessageBinary, pcm[off:min(off+frame, len(pcm))]))
	}
}

type chunkRow struct {
	Seq    int
	PCM    []byte
	IsLast bool
}

func chunks(t *testing.T, pool *pgxpool.Pool, id string) []chunkRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, pcm, is_last FROM live_chunks WHERE session_id = $1 ORDER BY seq`, id)
	require.NoError(t, err)
	defer rows.Close()
	var out []chunkRow
	for rows.Next() {
		var r chunkRow
		require.NoError(t, rows.Scan(&r.Seq, &r.PCM, &r.IsLast))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// waitSession waits for the one live session whose wav_name is name and returns its id.
func waitSession(t *testing.T, pool *pgxpool.Pool, name string) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		err := pool.QueryRow(context.Background(), `SELECT id::text FROM live_sessions WHERE wav_name = $1`, name).Scan(&id)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	return id
}

func waitState(t *testing.T, pool *pgxpool.Pool, id, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var s string
		err := pool.QueryRow(context.Background(), `SELECT state FROM live_sessions WHERE id = $1`, id).Scan(&s)
		return err == nil && s == state
	}, 10*time.Second, 10*time.Millisecond)
}

func notifyCaption(t *testing.T, pool *pgxpool.Pool, id string, msg map[string]any) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"session_id": id, "msg": msg})
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), `SELECT pg_notify('asr_captions', $1)`, string(payload))
	require.NoError(t, err)
}

func countRows(t *testing.T, pool *pgxpool.Pool) (sessions, tasks, jobs int) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM live_sessions`).Scan(&sessions))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM transcriptions`).Scan(&tasks))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM procrastinate_jobs`).Scan(&jobs))
	return
}

func storedWAV(t *testing.T, b *testBundle, id string) (key string, pcm []byte) {
	t.Helper()
	var size int64
	var dur float64
	var ct string
	err := b.pool.QueryRow(context.Background(), `SELECT audio_key, audio_size, content_type, duration_s
		FROM transcriptions WHERE id = $1 AND kind = 'live'`, id).Scan(&key, &size, &ct, &dur)
	require.NoError(t, err)
	require.Equal(t, "audio/wav", ct)
	require.True(t, strings.HasPrefix(key, "live/") && strings.HasSuffix(key, "/"+id+".wav"), key)
	raw, err := os.ReadFile(filepath.Join(b.storeDir, filepath.FromSlash(key)))
	require.NoError(t, err)
	require.Equal(t, size, int64(len(raw)))
	require.Equal(t, "RIFF", string(raw[:4]))
	require.Equal(t, uint32(len(raw)-8), binary.LittleEndian.Uint32(raw[4:]))
	require.Equal(t, uint32(16000), binary.LittleEndian.Uint32(raw[24:]))
	require.Equal(t, uint32(len(raw)-44), binary.LittleEndian.Uint32(raw[40:]))
	require.InDelta(t, float64(len(raw)-44)/32000, dur, 1e-6)
	return key, raw[44:]
}

// liveBundle starts a gateway with quick live timers.
func liveBundle(t *testing.T, opts ...func(*asrhttp.Server)) *testBundle {
	t.Helper()
	b := setup(t, append([]func(*asrhttp.Server){func(s *asrhttp.Server) {
		s.LivePollInterval = 100 * time.Millisecond
		s.WorkerTimeout = 2 * time.Second
		s.LiveFinalWait = 5 * time.Second
		s.WSMaxFrameBytes = 64 << 10
	}}, opts...)...)
	select {
	case <-b.listener.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("listener not ready")
	}
	return b
}

func TestLiveStream(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)
	addLiveWorker(t, b.pool, "w-live")
	ctx := context.Background()
	pcm := jfkPCM(t)
	require.Len(t, pcm, 352000)

	c := dial(t, b, "/")
	sendJSON(t, c, config(nil))
	id := waitSession(t, b.pool, "jfk")

	// The transaction: transcription, session, job.
	var kind, status, filename, hotwords string
	var jobID int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT kind, status, filename, hotwords, job_id FROM transcriptions WHERE id = $1`, id).
		Scan(&kind, &status, &filename, &hotwords, &jobID))
	require.Equal(t, []string{"live", "processing", "jfk", `{"JFK": 20}`}, []string{kind, status, filename, hotwords})
	var queue, task, lock, qlock, args string
	var prio int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT queue_name, task_name, priority, lock, queueing_lock, args::text
		FROM procrastinate_jobs WHERE id = $1`, jobID).Scan(&queue, &task, &prio, &lock, &qlock, &args))
	require.Equal(t, []string{"live", "asr.live_session", "live:" + id, "live:" + id}, []string{queue, task, lock, qlock})
	require.Equal(t, 40, prio)
	require.JSONEq(t, fmt.Sprintf(`{"session_id": %q}`, id), args)
	var mode, state string
	var fs, interval int
	var itn bool
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT mode, audio_fs, chunk_interval, itn, state FROM live_sessions WHERE id = $1`, id).
		Scan(&mode, &fs, &interval, &itn, &state))
	require.Equal(t, "2pass", mode)
	require.Equal(t, []int{16000, 10}, []int{fs, interval})
	require.True(t, itn)
	require.Equal(t, "open", state)

	// Every full 600 ms chunk is inserted as soon as it is complete.
	sendPCM(t, c, pcm, 1920)
	require.Eventually(t, func() bool { return len(chunks(t, b.pool, id)) == 18 }, 5*time.Second, 10*time.Millisecond)
	for i, ch := range chunks(t, b.pool, id) {
		require.Equal(t, i, ch.Seq)
		require.Len(t, ch.PCM, 19200)
		require.False(t, ch.IsLast)
	}

	// Captions are forwarded verbatim, in order.
	sent := []string{
		`{"mode": "2pass-online", "text": "and so", "wav_name": "jfk", "is_final": false, "session_id": "` + id + `"}`,
		`{"mode":"2pass-online","text":" my fellow","wav_name":"jfk","is_final":false}`,
		`{"mode":"2pass-offline","text":"And so, my fellow Americans, ask not…","wav_name":"jfk","is_final":false,"stamp_sents":[{"text_seg":"and so","punc":",","start":0,"end":900,"ts_list":[[0,300],[300,900]]}]}`,
	}
	for _, m := range sent {
		_, err := b.pool.Exec(ctx, `SELECT pg_notify('asr_captions', $1)`, `{"session_id":"`+id+`","msg":`+m+`}`)
		require.NoError(t, err)
	}
	// A caption of another session is not delivered here.
	notifyCaption(t, b.pool, uuid.NewString(), map[string]any{"mode": "2pass-offline", "text": "not yours"})
	for _, want := range sent {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		typ, got, err := c.Read(rctx)
		cancel()
		require.NoError(t, err)
		require.Equal(t, websocket.MessageText, typ)
		require.Equal(t, want, string(got))
	}

	// End of speech: the remainder is the last chunk, the session ends, the audio is stored.
	sendJSON(t, c, map[string]any{"is_speaking": false})
	waitState(t, b.pool, id, "ended")
	all := chunks(t, b.pool, id)
	require.Len(t, all, 19)
	require.True(t, all[18].IsLast)
	require.Len(t, all[18].PCM, len(pcm)-18*19200)
	var joined []byte
	for _, ch := range all {
		joined = append(joined, ch.PCM...)
	}
	require.Equal(t, pcm, joined)
	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT chunks FROM live_sessions WHERE id = $1`, id).Scan(&n))
	require.Equal(t, 19, n)
	_, stored := storedWAV(t, b, id)
	require.Equal(t, pcm, stored)

	// The socket stays open for the last captions; the final one closes it normally.
	final := `{"mode":"2pass-offline","text":"ask what you can do for your country.","wav_name":"jfk","is_final":true}`
	_, err := b.pool.Exec(ctx, `SELECT pg_notify('asr_captions', $1)`, `{"session_id":"`+id+`","msg":`+final+`}`)
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, got, err := c.Read(rctx)
	require.NoError(t, err)
	require.Equal(t, final, string(got))
	_, _, err = c.Read(rctx)
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "%v", err)
}

func TestLiveFinalsNeverDropped(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)
	addLiveWorker(t, b.pool, "w-live")
	c := dial(t, b, "/api/v1/asr/stream")
	sendJSON(t, c, config(map[string]any{"wav_name": "burst"}))
	id := waitSession(t, b.pool, "burst")
	// A burst far larger than the per-socket queue, from one transaction.
	var finals []string
	for i := 99; i < 2000; i += 100 {
		finals = append(finals, fmt.Sprintf("final %d", i))
	}
	_, err := b.pool.Exec(context.Background(), `SELECT pg_notify('asr_captions', json_build_object('session_id', $1::text,
		'msg', json_build_object(
			'mode', CASE WHEN i % 100 = 99 THEN '2pass-offline' ELSE '2pass-online' END,
			'text', CASE WHEN i % 100 = 99 THEN 'final ' ELSE 'partial ' END || i,
			'pad', repeat('x', 2000), 'is_final', false))::text)
		FROM generate_series(0, 1999) AS i`, id)
	require.NoError(t, err)
	var gotFinals []string
	partials := 0
	for len(gotFinals) < len(finals) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, got, err := c.Read(ctx)
		cancel()
		require.NoError(t, err, "finals so far: %d", len(gotFinals))
		var m map[string]any
		require.NoError(t, json.Unmarshal(got, &m))
		if m["mode"] == "2pass-offline" {
			gotFinals = append(gotFinals, m["text"].(string))
		} else {
			partials++
		}
	}
	require.Equal(t, finals, gotFinals)
	t.Logf("partials delivered: %d of %d", partials, 2000-len(finals))
}

func TestLive8kHzAndWAV(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)
	addLiveWorker(t, b.pool, "w-live")

	t.Run("8kHz", func(t *testing.T) {
		in := make([]byte, 16000) // 1 s at 8 kHz
		samples := make([]int16, 8000)
		for i := range samples {
			samples[i] = int16((i*37)%20000 - 10000)
			binary.LittleEndian.PutUint16(in[2*i:], uint16(samples[i]))
		}
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "eight", "audio_fs": 8000}))
		id := waitSession(t, b.pool, "eight")
		sendPCM(t, c, in, 333) // odd frames: samples split across frames
		sendJSON(t, c, map[string]any{"is_speaking": false})
		waitState(t, b.pool, id, "ended")
		all := chunks(t, b.pool, id)
		require.Len(t, all, 2)
		require.Len(t, all[0].PCM, 19200)
		require.Len(t, all[1].PCM, 32000-19200)
		require.True(t, all[1].IsLast)
		_, out := storedWAV(t, b, id)
		require.Len(t, out, 32000)
		for n, x := range samples {
			prev := samples[max(n-1, 0)]
			require.Equal(t, x, int16(binary.LittleEndian.Uint16(out[4*n+2:])), "sample %d", n)
			require.Equal(t, int16((int32(prev)+int32(x))/2), int16(binary.LittleEndian.Uint16(out[4*n:])), "sample %d", n)
		}
	})

	t.Run("wav header stripped", func(t *testing.T) {
		file := dbtest.ReadSpeech(t, "jfk_en.wav")
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "wavfile", "wav_format": "wav"}))
		id := waitSession(t, b.pool, "wavfile")
		sendPCM(t, c, file[:300], 7) // the header split over many frames
		sendPCM(t, c, file[300:], 3200)
		sendJSON(t, c, map[string]any{"is_speaking": false})
		waitState(t, b.pool, id, "ended")
		_, out := storedWAV(t, b, id)
		require.Equal(t, jfkPCM(t), out)
	})
}

func TestLiveTrouble(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)

	// No worker at all, a stale live worker, a batch-only worker: refused at once.
	c := dial(t, b, "/")
	sendJSON(t, c, config(nil))
	expectError(t, c, "no_live_worker", websocket.StatusTryAgainLater)
	_, err := b.pool.Exec(context.Background(), `INSERT INTO workers (id, host, pid, device, engine, queues, state, last_heartbeat)
		VALUES ('stale', 'h', 1, 'cpu', 'e', '{live}', 'idle', now() - interval '1 hour'),
		       ('batch', 'h', 2, 'cpu', 'e', '{batch}', 'idle', now()),
		       ('gone', 'h', 3, 'cpu', 'e', '{live}', 'gone', now())`)
	require.NoError(t, err)
	c = dial(t, b, "/api/v1/asr/stream")
	sendJSON(t, c, config(nil))
	expectError(t, c, "no_live_worker", websocket.StatusTryAgainLater)

	addLiveWorker(t, b.pool, "w-live")
	cases := []struct {
		name   string
		send   func(c *websocket.Conn)
		code   string
		status websocket.StatusCode
	}{
		{"binary before config", func(c *websocket.Conn) {
			require.NoError(t, c.Write(context.Background(), websocket.MessageBinary, make([]byte, 3200)))
		}, "invalid", websocket.StatusPolicyViolation},
		{"malformed JSON", func(c *websocket.Conn) {
			require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(`{"mode": "2pass",`)))
		}, "invalid", websocket.StatusPolicyViolation},
		{"JSON not an object", func(c *websocket.Conn) {
			require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(`[1,2]`)))
		}, "invalid", websocket.StatusPolicyViolation},
		{"unknown mode", func(c *websocket.Conn) { sendJSON(t, c, config(map[string]any{"mode": "3pass"})) },
			"unsupported_media", websocket.StatusUnsupportedData},
		{"unsupported audio_fs", func(c *websocket.Conn) { sendJSON(t, c, config(map[string]any{"audio_fs": 44100})) },
			"unsupported_media", websocket.StatusUnsupportedData},
		{"unknown format", func(c *websocket.Conn) { sendJSON(t, c, config(map[string]any{"wav_format": "mp3"})) },
			"unsupported_media", websocket.StatusUnsupportedData},
		{"bad chunk_size", func(c *websocket.Conn) { sendJSON(t, c, config(map[string]any{"chunk_size": []int{5, 10}})) },
			"invalid", websocket.StatusPolicyViolation},
		{"oversized frame", func(c *websocket.Conn) {
			sendJSON(t, c, config(map[string]any{"wav_name": strings.Repeat("n", 70<<10)}))
		}, "too_large", websocket.StatusMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, b, "/")
			tc.send(c)
			expectError(t, c, tc.code, tc.status)
		})
	}
	sessions, tasks, jobs := countRows(t, b.pool)
	require.Equal(t, []int{0, 0, 0}, []int{sessions, tasks, jobs}, "nothing stored")
	entries, err := os.ReadDir(b.storeDir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotEqual(t, "live", e.Name(), "no live audio stored")
	}

	t.Run("oversized audio frame mid-session", func(t *testing.T) {
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "big"}))
		id := waitSession(t, b.pool, "big")
		sendPCM(t, c, make([]byte, 3200), 3200)
		require.NoError(t, c.Write(context.Background(), websocket.MessageBinary, make([]byte, 65<<10)))
		expectError(t, c, "too_large", websocket.StatusMessageTooBig)
		waitState(t, b.pool, id, "ended")
		_, out := storedWAV(t, b, id)
		require.Len(t, out, 3200)
	})

	t.Run("too many sessions", func(t *testing.T) {
		b.srv.LiveMaxSessions = 1
		defer func() { b.srv.LiveMaxSessions = 32 }()
		c1 := dial(t, b, "/")
		sendJSON(t, c1, config(map[string]any{"wav_name": "one"}))
		waitSession(t, b.pool, "one")
		c2 := dial(t, b, "/")
		expectError(t, c2, "too_many_sessions", websocket.StatusTryAgainLater)
	})
}

func TestLiveDisconnectAndIdle(t *testing.T) {
	t.Parallel()
	b := liveBundle(t, func(s *asrhttp.Server) { s.WSIdleTimeout = 700 * time.Millisecond })
	addLiveWorker(t, b.pool, "w-live")
	pcm := jfkPCM(t)[:28800]

	t.Run("client gone mid-sentence", func(t *testing.T) {
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "gone"}))
		id := waitSession(t, b.pool, "gone")
		sendPCM(t, c, pcm, 3200)
		require.Eventually(t, func() bool { return len(chunks(t, b.pool, id)) == 1 }, 5*time.Second, 10*time.Millisecond)
		c.CloseNow()
		waitState(t, b.pool, id, "ended")
		all := chunks(t, b.pool, id)
		require.Len(t, all, 2)
		require.False(t, all[0].IsLast)
		require.True(t, all[1].IsLast)
		require.Len(t, all[1].PCM, 9600)
		_, out := storedWAV(t, b, id)
		require.Equal(t, pcm, out)
	})

	t.Run("idle client", func(t *testing.T) {
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "idle"}))
		id := waitSession(t, b.pool, "idle")
		sendPCM(t, c, pcm[:6400], 3200)
		waitState(t, b.pool, id, "ended")
		all := chunks(t, b.pool, id)
		require.Len(t, all, 1)
		require.True(t, all[0].IsLast)
		require.Len(t, all[0].PCM, 6400)
		_, err := readMsg(t, c, 5*time.Second)
		require.Error(t, err)
	})
}

func TestLiveWorkerLost(t *testing.T) {
	t.Parallel()
	b := liveBundle(t, func(s *asrhttp.Server) { s.WorkerTimeout = 1 * time.Second })
	addLiveWorker(t, b.pool, "w-live")
	ctx := context.Background()
	c := dial(t, b, "/")
	sendJSON(t, c, config(map[string]any{"wav_name": "lost"}))
	id := waitSession(t, b.pool, "lost")
	// The simulated worker takes the session and keeps heartbeating for a while.
	_, err := b.pool.Exec(ctx, `UPDATE workers SET current_task = $1, state = 'busy', last_heartbeat = now() WHERE id = 'w-live'`, id)
	require.NoError(t, err)
	sendPCM(t, c, make([]byte, 19200), 3200)
	notifyCaption(t, b.pool, id, map[string]any{"mode": "2pass-online", "text": "hello"})
	m, err := readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello", m["text"])

	// Its heartbeat goes stale.
	_, err = b.pool.Exec(ctx, `UPDATE workers SET last_heartbeat = now() - interval '10 seconds' WHERE id = 'w-live'`)
	require.NoError(t, err)
	m, err = readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"code": "worker_lost",
		"error": "the worker transcribing this session stopped; audio received so far is kept"}, m)

	// Once only: a later caption (from the worker that resumed) comes next.
	time.Sleep(400 * time.Millisecond)
	notifyCaption(t, b.pool, id, map[string]any{"mode": "2pass-online", "text": "resumed"})
	m, err = readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "resumed", m["text"])
}

func TestLiveConcurrentSessions(t *testing.T) {
	t.Parallel()
	// Five sockets from one address: above the per-client default of 4.
	b := liveBundle(t, func(s *asrhttp.Server) { s.LiveMaxPerClient = 0 })
	addLiveWorker(t, b.pool, "w-live")
	pcm := jfkPCM(t)
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("conc-%d", i)
			c, _, err := websocket.Dial(context.Background(), wsURL(b, "/"), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.CloseNow()
			mine := pcm[i*40000 : i*40000+100000]
			if err := c.Write(context.Background(), websocket.MessageText, []byte(`{"mode":"online","wav_name":"`+name+`"}`)); err != nil {
				t.Error(err)
				return
			}
			for off := 0; off < len(mine); off += 1000 + 2*i {
				if err := c.Write(context.Background(), websocket.MessageBinary, mine[off:min(off+1000+2*i, len(mine))]); err != nil {
					t.Error(err)
					return
				}
			}
			_ = c.Write(context.Background(), websocket.MessageText, []byte(`{"is_speaking": false}`))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if want := `{"text":"caption for ` + name + `","is_final":true}`; string(got) != want {
				t.Errorf("session %d got %s", i, got)
			}
		}(i)
	}
	// A bad session alongside: malformed JSON after some audio.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := dial(t, b, "/")
		sendJSON(t, c, config(map[string]any{"wav_name": "bad"}))
		sendPCM(t, c, pcm[:50000], 5000)
		require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(`{oops`)))
		expectError(t, c, "invalid", websocket.StatusPolicyViolation)
	}()
	for i := range ids {
		ids[i] = waitSession(t, b.pool, fmt.Sprintf("conc-%d", i))
	}
	for i, id := range ids {
		waitState(t, b.pool, id, "ended")
		var joined []byte
		for _, ch := range chunks(t, b.pool, id) {
			joined = append(joined, ch.PCM...)
		}
		require.Equal(t, pcm[i*40000:i*40000+100000], joined, "session %d", i)
	}
	for i := len(ids) - 1; i >= 0; i-- {
		_, err := b.pool.Exec(context.Background(), `SELECT pg_notify('asr_captions', $1)`,
			fmt.Sprintf(`{"session_id":"%s","msg":{"text":"caption for conc-%d","is_final":true}}`, ids[i], i))
		require.NoError(t, err)
	}
	wg.Wait()
}

func TestLiveRouting(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)
	resp, body := b.do(t, http.MethodGet, "/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, strings.ToLower(string(body)), "<html")
	resp, _ = b.do(t, http.MethodGet, "/api/v1/asr/stream", nil)
	require.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	resp, body = b.do(t, http.MethodGet, "/api/v1/asr/queue/status", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `"live":0`)
}

// FunASR's Python client sends the files of a list over one socket, one
// configuration, audio and end of speech after the other.
func TestLiveUtterancesOnOneSocket(t *testing.T) {
	t.Parallel()
	b := liveBundle(t)
	addLiveWorker(t, b.pool, "w-live")
	pcm := jfkPCM(t)
	c := dial(t, b, "/")
	sendJSON(t, c, config(map[string]any{"wav_name": "first"}))
	sendPCM(t, c, pcm[:40000], 1920)
	sendJSON(t, c, map[string]any{"is_speaking": false})
	sendJSON(t, c, config(map[string]any{"wav_name": "second", "mode": "online"}))
	sendPCM(t, c, pcm[40000:100000], 1920)
	first, second := waitSession(t, b.pool, "first"), waitSession(t, b.pool, "second")
	require.NotEqual(t, first, second)
	waitState(t, b.pool, first, "ended")

	// The first session's final caption does not close the socket: the second is speaking.
	notifyCaption(t, b.pool, first, map[string]any{"mode": "2pass-offline", "text": "one", "is_final": true})
	m, err := readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "one", m["text"])
	sendPCM(t, c, pcm[100000:120000], 1920)
	sendJSON(t, c, map[string]any{"is_speaking": false, "is_end": true})
	waitState(t, b.pool, second, "ended")
	notifyCaption(t, b.pool, second, map[string]any{"mode": "online", "text": "two", "is_final": true})
	m, err = readMsg(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "two", m["text"])
	_, err = readMsg(t, c, 5*time.Second)
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "%v", err)

	for id, want := range map[string][]byte{first: pcm[:40000], second: pcm[40000:120000]} {
		var joined []byte
		for _, ch := range chunks(t, b.pool, id) {
			joined = append(joined, ch.PCM...)
		}
		require.Equal(t, want, joined)
		_, stored := storedWAV(t, b, id)
		require.Equal(t, want, stored)
	}
}
