package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/audiocheck"
	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/lanasr/lanasr/gateway-go/postgres"
	"github.com/lanasr/lanasr/gateway-go/storage"
	"github.com/lanasr/lanasr/gateway-go/ui"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	srv      *asrhttp.Server
	ts       *httptest.Server
	pool     *pgxpool.Pool
	listener *postgres.Listener
	storeDir string
}

func setup(t *testing.T, opts ...func(*asrhttp.Server)) *testBundle {
	t.Helper()
	ctx := context.Background()
	url := dbtest.NewDatabase(t)
	db, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(db.Close)

	storeDir := t.TempDir()
	store, err := storage.New(storeDir)
	require.NoError(t, err)

	listener, err := postgres.NewListener(url, slog.New(slog.NewTextHandler(t.Output(), nil)))
	require.NoError(t, err)
	listener.Start(ctx)
	t.Cleanup(listener.Close)

	s := asrhttp.NewServer()
	s.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s.TaskService = postgres.NewTaskService(db)
	s.WorkerService = postgres.NewWorkerService(db)
	s.EventService = listener
	s.HealthService = db
	s.AudioStore = store
	s.CheckAudio = audiocheck.Check
	s.LiveService = postgres.NewLiveService(db)
	s.CaptionService = listener
	s.LiveStore = store
	s.UI = ui.Handler(t.TempDir())
	for _, opt := range opts {
		opt(s)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = s.Close() }) // runs first: ends event streams
	return &testBundle{srv: s, ts: ts, pool: db.Pool, listener: listener, storeDir: storeDir}
}

// submit posts a multipart upload with the file under field (none when
// field is empty) and the given extra fields.
func (b *testBundle) submit(t *testing.T, field, filename string, content []byte, fields map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	if field != "" {
		fw, err := mw.CreateFormFile(field, filename)
		require.NoError(t, err)
		_, err = fw.Write(content)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	resp, err := http.Post(b.ts.URL+"/api/v1/asr/submit", mw.FormDataContentType(), &body)
	require.NoError(t, err)
	return resp, decode(t, resp)
}

func (b *testBundle) do(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.ts.URL+path, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func (b *testBundle) getJSON(t *testing.T, method, path string) (*http.Response, map[string]any) {
	t.Helper()
	resp, body := b.do(t, method, path, nil)
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return resp, v
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return v
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// requireNoLeftovers checks that no task, job or file (temporary or not)
// was left behind by a rejected upload.
func (b *testBundle) requireNoLeftovers(t *testing.T) {
	t.Helper()
	require.Zero(t, b.count(t, `SELECT count(*) FROM transcriptions`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM procrastinate_jobs`))
	var files []string
	require.NoError(t, filepath.WalkDir(b.storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	}))
	require.Empty(t, files)
}

// insertDone simulates a worker that finished a task, with segments.
func (b *testBundle) insertDone(t *testing.T, filename, text string, segs [][3]any) string {
	t.Helper()
	var id string
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO transcriptions
		(filename, status, text, language, model, engine, worker, duration_s, progress, started_at, finished_at)
		VALUES ($1, 'done', $2, 'zh', 'paraformer-zh', 'funasr', 'master-1', 4.5, 1, now() - interval '2 seconds', now())
		RETURNING id::text`, filename, text).Scan(&id))
	for i, s := range segs {
		b.exec(t, `INSERT INTO segments (transcription_id, idx, start_s, end_s, text) VALUES ($1, $2, $3, $4, $5)`,
			id, i, s[0], s[1], s[2])
	}
	return id
}

func TestSubmit(t *testing.T) {
	t.Parallel()

	t.Run("HappyPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		wav := dbtest.ReadSpeech(t, "jfk_en.wav")

		resp, body := b.submit(t, "audio", "../../etc/jfk en.wav", wav, map[string]string{"language": "en", "priority": "2", "hotwords": "Kennedy"})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
		require.Equal(t, "queued", body["status"])
		require.EqualValues(t, 1, body["position"])
		require.Contains(t, body, "estimated_wait")
		id := body["task_id"].(string)

		// One row and its job, created together.
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM transcriptions t JOIN procrastinate_jobs j ON j.id = t.job_id
			WHERE t.id = $1 AND j.status = 'todo' AND j.task_name = 'asr.transcribe_file' AND j.queue_name = 'batch'
			AND j.args->>'task_id' = $1::text AND j.priority = 2`, id))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM procrastinate_jobs`))

		var key, filename, lang, hotwords string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT audio_key, filename, language_requested, hotwords
			FROM transcriptions WHERE id = $1`, id).Scan(&key, &filename, &lang, &hotwords))
		require.Regexp(t, `^uploads/\d{4}/\d{2}/\d{2}/`+id+`\.wav$`, key)
		require.Equal(t, "jfk en.wav", filename)
		require.Equal(t, "en", lang)
		require.Equal(t, "Kennedy", hotwords)
		stored, err := os.ReadFile(filepath.Join(b.storeDir, filepath.FromSlash(key)))
		require.NoError(t, err)
		require.Equal(t, wav, stored)

		resp, res := b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "queued", res["status"])
		require.Equal(t, "/api/v1/asr/audio/"+id, res["audio_url"])
		require.Equal(t, []any{}, res["segments"])
		require.Nil(t, res["finished_at"])
		require.EqualValues(t, 1, res["position"])
	})

	t.Run("AcceptsOtherFormats", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		flac := append([]byte("fLaC\x00\x00\x00\x22"), make([]byte, 64)...)
		resp, body := b.submit(t, "audio", "x.bin", flac, nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
		var key string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT audio_key FROM transcriptions`).Scan(&key))
		require.True(t, strings.HasSuffix(key, ".flac"), key)
	})

	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 100)...)
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	random[0], random[1] = 0x00, 0x00 // no accidental frame sync

	badInputs := []struct {
		name     string
		field    string
		filename string
		content  func(t *testing.T) []byte
		fields   map[string]string
		status   int
		code     string
	}{
		{"Empty", "audio", "empty.wav", func(*testing.T) []byte { return nil }, nil, 400, asr.EINVALID},
		{"PNG", "audio", "image.wav", func(*testing.T) []byte { return png }, nil, 415, asr.EUNSUPPORTEDMEDIA},
		{"RandomBytesNamedWav", "audio", "noise.wav", func(*testing.T) []byte { return random }, nil, 415, asr.EUNSUPPORTEDMEDIA},
		{"TruncatedWav", "audio", "cut.wav", func(t *testing.T) []byte {
			wav := dbtest.ReadSpeech(t, "aishell_BAC009S0724W0121_zh.wav")
			return wav[:len(wav)/2]
		}, nil, 422, asr.ECORRUPTAUDIO},
		{"MissingAudioField", "", "", func(*testing.T) []byte { return nil }, map[string]string{"language": "zh"}, 400, asr.EINVALID},
		{"BadPriority", "audio", "a.wav", func(t *testing.T) []byte { return dbtest.ReadSpeech(t, "jfk_en.wav") },
			map[string]string{"priority": "99"}, 400, asr.EINVALID},
		{"BadLanguage", "audio", "a.wav", func(t *testing.T) []byte { return dbtest.ReadSpeech(t, "jfk_en.wav") },
			map[string]string{"language": "../../x"}, 400, asr.EINVALID},
	}
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			resp, body := b.submit(t, tt.field, tt.filename, tt.content(t), tt.fields)
			require.Equal(t, tt.status, resp.StatusCode, "%v", body)
			require.Equal(t, tt.code, body["code"])
			require.NotEmpty(t, body["error"])
			b.requireNoLeftovers(t)
		})
	}

	t.Run("Oversize", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(s *asrhttp.Server) { s.MaxUploadBytes = 100 << 10 })
		resp, body := b.submit(t, "audio", "big.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%v", body)
		require.Equal(t, asr.ETOOLARGE, body["code"])
		b.requireNoLeftovers(t)
	})

	t.Run("OversizeBody", func(t *testing.T) {
		t.Parallel()
		// A body far over the limit in a field that is not the audio.
		b := setup(t, func(s *asrhttp.Server) { s.MaxUploadBytes = 1 })
		resp, body := b.submit(t, "other", "x", bytes.Repeat([]byte("x"), 2<<20), nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%v", body)
		b.requireNoLeftovers(t)
	})

	t.Run("OversizeChunked", func(t *testing.T) {
		t.Parallel()
		// No Content-Length: the limit is enforced while streaming.
		b := setup(t, func(s *asrhttp.Server) { s.MaxUploadBytes = 1 })
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, err := mw.CreateFormFile("other", "x")
		require.NoError(t, err)
		_, err = fw.Write(bytes.Repeat([]byte("x"), 2<<20))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		req, err := http.NewRequest("POST", b.ts.URL+"/api/v1/asr/submit", io.MultiReader(&body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		require.EqualValues(t, 0, req.ContentLength)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		v := decode(t, resp)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%v", v)
		require.Equal(t, asr.ETOOLARGE, v["code"])
		b.requireNoLeftovers(t)
	})

	t.Run("NotMultipart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, err := http.Post(b.ts.URL+"/api/v1/asr/submit", "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		body := decode(t, resp)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, asr.EINVALID, body["code"])
	})
}

func TestResultAndHistory(t *testing.T) {
	t.Parallel()

	t.Run("UnknownAndMalformedIDs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, path := range []string{
			"/api/v1/asr/result/", "/api/v1/asr/audio/", "/api/v1/asr/export/",
		} {
			resp, body := b.getJSON(t, "GET", path+"6f1c1c9e-4b7a-4a4e-9a51-1f0d2c3b4a59"+map[bool]string{true: ".txt"}[strings.Contains(path, "export")])
			require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
			require.Equal(t, asr.ENOTFOUND, body["code"])

			resp, body = b.getJSON(t, "GET", path+"not-a-uuid"+map[bool]string{true: ".txt"}[strings.Contains(path, "export")])
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
			require.Equal(t, asr.EINVALID, body["code"])
		}
		for _, method := range []string{"POST /api/v1/asr/retry/", "POST /api/v1/asr/cancel/", "DELETE /api/v1/asr/task/"} {
			m, p, _ := strings.Cut(method, " ")
			resp, body := b.getJSON(t, m, p+"6f1c1c9e-4b7a-4a4e-9a51-1f0d2c3b4a59")
			require.Equal(t, http.StatusNotFound, resp.StatusCode, method)
			require.Equal(t, asr.ENOTFOUND, body["code"])
			resp, _ = b.getJSON(t, m, p+"12345")
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, method)
		}
	})

	t.Run("ChineseResultAndSearch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertDone(t, "广州.wav", "广州市房地产中介协会分析", [][3]any{{0.0, 1.234, "广州市房地产"}, {1.234, 3.5, "中介协会分析"}})
		b.insertDone(t, "welcome.wav", "欢迎大家来体验达摩院推出的语音识别模型", nil)
		b.insertDone(t, "odd.wav", "50% off_sale", nil)

		resp, res := b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "done", res["status"])
		require.Equal(t, "广州市房地产中介协会分析", res["text"])
		require.EqualValues(t, 1, res["progress"])
		require.EqualValues(t, 4.5, res["duration"])
		require.Equal(t, "paraformer-zh", res["model"])
		require.Equal(t, []any{
			map[string]any{"start": 0.0, "end": 1.234, "text": "广州市房地产"},
			map[string]any{"start": 1.234, "end": 3.5, "text": "中介协会分析"},
		}, res["segments"])
		_, err := time.Parse(time.RFC3339, res["finished_at"].(string))
		require.NoError(t, err)
		require.Nil(t, res["position"])

		search := func(query string) map[string]any {
			resp, v := b.getJSON(t, "GET", "/api/v1/asr/history?"+query)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%v", v)
			return v
		}
		h := search("q=" + "房地产")
		require.EqualValues(t, 1, h["total"])
		rec := h["records"].([]any)[0].(map[string]any)
		require.Equal(t, id, rec["task_id"])
		require.NotContains(t, rec, "segments")

		require.EqualValues(t, 1, search("q=%E8%BE%BE%E6%91%A9%E9%99%A2")["total"]) // 达摩院
		require.EqualValues(t, 1, search("q=WELCOME")["total"])                     // filename, any case
		require.EqualValues(t, 1, search("q=50%25")["total"])                       // a literal %
		require.EqualValues(t, 0, search("q=5_%25")["total"])                       // _ is literal too
		require.EqualValues(t, 3, search("status=done&kind=file")["total"])
		require.EqualValues(t, 0, search("status=failed")["total"])
		h = search("limit=1&offset=1")
		require.EqualValues(t, 3, h["total"])
		require.Len(t, h["records"], 1)
		require.EqualValues(t, 1, h["limit"])

		// Date bounds on created_at: from inclusive, to exclusive.
		b.exec(t, `UPDATE transcriptions SET created_at = '2026-01-10T12:00:00Z' WHERE filename = 'odd.wav'`)
		h = search("from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z")
		require.EqualValues(t, 1, h["total"])
		require.Equal(t, "odd.wav", h["records"].([]any)[0].(map[string]any)["filename"])
		require.EqualValues(t, 0, search("from=2026-01-10T12:00:01Z&to=2026-01-11T00:00:00Z")["total"])
		require.EqualValues(t, 1, search("from=2026-01-10T20:00:00%2B08:00&to=2026-01-10T20:00:01%2B08:00")["total"])
		require.EqualValues(t, 2, search("from=2026-02-01T00:00:00Z")["total"])

		for _, bad := range []string{"limit=0", "limit=201", "limit=x", "offset=-1", "status=weird", "kind=video",
			"from=yesterday", "to=2026-13-01T00:00:00Z", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"} {
			resp, v := b.getJSON(t, "GET", "/api/v1/asr/history?"+bad)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
			require.Equal(t, asr.EINVALID, v["code"])
		}
	})

	t.Run("SQLViews", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertDone(t, "a.wav", "广州市房地产中介协会分析", [][3]any{{0.0, 1.0, "广州市"}})
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM history WHERE text ILIKE '%房地产%' AND task_id = $1`, id))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM history_segments WHERE task_id = $1 AND idx = 0`, id))
	})
}

var (
	srtCue = regexp.MustCompile(`^(\d+)\n(\d{2}:\d{2}:\d{2},\d{3}) --> (\d{2}:\d{2}:\d{2},\d{3})\n(.+)$`)
	vttCue = regexp.MustCompile(`^(\d{2}:\d{2}:\d{2}\.\d{3}) --> (\d{2}:\d{2}:\d{2}\.\d{3})\n(.+)$`)
)

func TestExport(t *testing.T) {
	t.Parallel()

	t.Run("Formats", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertDone(t, "会议.wav", "广州市房地产中介协会分析", [][3]any{{0.0, 1.234, "广州市房地产"}, {61.5, 3725.007, "中介协会分析"}})

		resp, body := b.do(t, "GET", "/api/v1/asr/export/"+id+".txt", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "广州市房地产中介协会分析\n", string(body))
		require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"))

		resp, body = b.do(t, "GET", "/api/v1/asr/export/"+id+".srt", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
		blocks := strings.Split(strings.TrimRight(string(body), "\n"), "\n\n")
		require.Len(t, blocks, 2)
		m := srtCue.FindStringSubmatch(blocks[0])
		require.NotNil(t, m, blocks[0])
		require.Equal(t, []string{"1", "00:00:00,000", "00:00:01,234", "广州市房地产"}, m[1:])
		m = srtCue.FindStringSubmatch(blocks[1])
		require.NotNil(t, m, blocks[1])
		require.Equal(t, []string{"2", "00:01:01,500", "01:02:05,007", "中介协会分析"}, m[1:])

		resp, body = b.do(t, "GET", "/api/v1/asr/export/"+id+".vtt", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/vtt"))
		require.True(t, strings.HasPrefix(string(body), "WEBVTT\n\n"))
		blocks = strings.Split(strings.TrimRight(strings.TrimPrefix(string(body), "WEBVTT\n\n"), "\n"), "\n\n")
		require.Len(t, blocks, 2)
		m = vttCue.FindStringSubmatch(blocks[0])
		require.NotNil(t, m, blocks[0])
		require.Equal(t, []string{"00:00:00.000", "00:00:01.234", "广州市房地产"}, m[1:])

		resp, body = b.do(t, "GET", "/api/v1/asr/export/"+id+".json", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var res map[string]any
		require.NoError(t, json.Unmarshal(body, &res))
		require.Equal(t, id, res["task_id"])
		require.Len(t, res["segments"], 2)
		require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	})

	t.Run("NotDoneAndUnknownFormat", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, body := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		id := body["task_id"].(string)

		resp, v := b.getJSON(t, "GET", "/api/v1/asr/export/"+id+".srt")
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		require.Equal(t, asr.ECONFLICT, v["code"])
		resp, _ = b.getJSON(t, "GET", "/api/v1/asr/export/"+id+".docx")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

func TestTimestamp(t *testing.T) {
	t.Parallel()
	require.Equal(t, "00:00:01,234", asrhttp.Timestamp(1.234, ','))
	require.Equal(t, "00:00:01.234", asrhttp.Timestamp(1.234, '.'))
	require.Equal(t, "01:00:00.000", asrhttp.Timestamp(3599.9999, '.'))
	require.Equal(t, "00:00:00,000", asrhttp.Timestamp(-1, ','))
}

func TestAudio(t *testing.T) {
	t.Parallel()

	t.Run("RangeRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		wav := dbtest.ReadSpeech(t, "funasr_example_zh.wav")
		resp, body := b.submit(t, "audio", "example.wav", wav, nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		id := body["task_id"].(string)

		r, got := b.do(t, "GET", "/api/v1/asr/audio/"+id, nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, wav, got)
		require.Equal(t, "audio/wav", r.Header.Get("Content-Type"))
		require.Equal(t, "bytes", r.Header.Get("Accept-Ranges"))
		etag := r.Header.Get("ETag")
		require.NotEmpty(t, etag)

		r, got = b.do(t, "GET", "/api/v1/asr/audio/"+id, map[string]string{"Range": "bytes=100-1099"})
		require.Equal(t, http.StatusPartialContent, r.StatusCode)
		require.Equal(t, wav[100:1100], got)
		require.Equal(t, fmt.Sprintf("bytes 100-1099/%d", len(wav)), r.Header.Get("Content-Range"))

		r, got = b.do(t, "GET", "/api/v1/asr/audio/"+id, map[string]string{"Range": "bytes=-10"})
		require.Equal(t, http.StatusPartialContent, r.StatusCode)
		require.Equal(t, wav[len(wav)-10:], got)

		r, _ = b.do(t, "GET", "/api/v1/asr/audio/"+id, map[string]string{"If-None-Match": etag})
		require.Equal(t, http.StatusNotModified, r.StatusCode)
	})
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("CancelRetryDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, body := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		id := body["task_id"].(string)

		// Retry of a queued task is a conflict.
		resp, v := b.getJSON(t, "POST", "/api/v1/asr/retry/"+id)
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		require.Equal(t, asr.ECONFLICT, v["code"])

		resp, v = b.getJSON(t, "POST", "/api/v1/asr/cancel/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, map[string]any{"task_id": id, "status": "canceled"}, v)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM procrastinate_jobs WHERE status = 'cancelled'`))

		resp, _ = b.getJSON(t, "POST", "/api/v1/asr/cancel/"+id)
		require.Equal(t, http.StatusConflict, resp.StatusCode)

		resp, v = b.getJSON(t, "POST", "/api/v1/asr/retry/"+id)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", v)
		require.Equal(t, "queued", v["status"])
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'`))

		var key string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT audio_key FROM transcriptions WHERE id = $1`, id).Scan(&key))
		resp, v = b.getJSON(t, "DELETE", "/api/v1/asr/task/"+id)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, map[string]any{"task_id": id, "deleted": true}, v)
		require.Zero(t, b.count(t, `SELECT count(*) FROM procrastinate_jobs`))
		_, err := os.Stat(filepath.Join(b.storeDir, filepath.FromSlash(key)))
		require.ErrorIs(t, err, os.ErrNotExist)

		resp, _ = b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("RetryFailed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, body := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		id := body["task_id"].(string)
		b.exec(t, `UPDATE procrastinate_jobs SET status = 'succeeded'`)
		b.exec(t, `UPDATE transcriptions SET status = 'failed', error = 'Audio could not be decoded.', finished_at = now()`)

		_, res := b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, "failed", res["status"])
		require.Equal(t, "Audio could not be decoded.", res["error"])

		resp, v := b.getJSON(t, "POST", "/api/v1/asr/retry/"+id)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", v)
		_, res = b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, "queued", res["status"])
		require.Nil(t, res["error"])

		// A done task cannot be canceled.
		b.exec(t, `UPDATE transcriptions SET status = 'done', finished_at = now()`)
		resp, _ = b.getJSON(t, "POST", "/api/v1/asr/cancel/"+id)
		require.Equal(t, http.StatusConflict, resp.StatusCode)
	})

	t.Run("QueueStatus", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			resp, _ := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
		}
		b.insertDone(t, "d.wav", "x", nil)
		resp, v := b.getJSON(t, "GET", "/api/v1/asr/queue/status")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, map[string]any{"queued": 2.0, "processing": 0.0, "done": 1.0, "failed": 0.0,
			"canceled": 0.0, "workers": 0.0, "workers_busy": 0.0, "live": 0.0}, v)

		// The second upload waits behind the first.
		resp, body := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.EqualValues(t, 3, body["position"])
		require.Greater(t, body["estimated_wait"].(float64), 0.0)
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()

	t.Run("ReceivesTaskEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertDone(t, "a.wav", "x", nil)
		other := b.insertDone(t, "b.wav", "y", nil)
		<-b.listener.Ready()

		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", b.ts.URL+"/api/v1/events?task_id="+id, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))

		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() && lines.Text() != ": connected" {
		}
		// A worker's progress on another task, then on ours.
		b.exec(t, `UPDATE transcriptions SET status = 'processing', progress = 0.5 WHERE id = $1`, other)
		b.exec(t, `UPDATE transcriptions SET status = 'processing', progress = 0.25 WHERE id = $1`, id)

		var event, data string
		for lines.Scan() {
			line := lines.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			} else if line == "" && data != "" {
				break
			}
		}
		require.Equal(t, "task", event)
		var payload map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &payload))
		require.Equal(t, id, payload["task_id"])
		require.Equal(t, "update", payload["op"])
		require.Equal(t, "processing", payload["status"])
		require.EqualValues(t, 0.25, payload["progress"])
	})

	t.Run("Keepalive", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(s *asrhttp.Server) { s.KeepaliveInterval = 50 * time.Millisecond })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", b.ts.URL+"/api/v1/events", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() && lines.Text() != ": keepalive" {
		}
		require.Equal(t, ": keepalive", lines.Text())
	})
}

func TestHealthAndWorkers(t *testing.T) {
	t.Parallel()

	t.Run("UnavailableWithoutWorkersReadyWithOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, v := b.getJSON(t, "GET", "/api/v1/health")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Equal(t, "ok", v["database"])
		require.EqualValues(t, 0, v["workers_active"])
		require.NotEmpty(t, v["reason"])
		require.Equal(t, v["reason"], v["error"])
		require.Equal(t, asr.EUNAVAILABLE, v["code"])

		// A worker that stopped heartbeating does not count.
		b.exec(t, `INSERT INTO workers (id, host, pid, device, engine, queues, state, last_heartbeat)
			VALUES ('old', 'laptop', 7, 'cpu', 'offline', '{batch}', 'idle', now() - interval '1 hour')`)
		resp, _ = b.getJSON(t, "GET", "/api/v1/health")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

		// Nor does one still loading its models, or one whose models failed to load.
		b.exec(t, `INSERT INTO workers (id, host, pid, device, engine, queues, state)
			VALUES ('loading', 'laptop', 8, 'cpu', 'auto', '{batch}', 'starting'),
			       ('broken', 'laptop', 9, 'cpu', 'funasr', '{batch}', 'error')`)
		resp, v = b.getJSON(t, "GET", "/api/v1/health")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.EqualValues(t, 0, v["workers_active"])

		b.exec(t, `INSERT INTO workers (id, host, pid, device, engine, queues, models, state)
			VALUES ('master-1', 'master', 42, 'cuda', 'funasr', '{batch,live,final}', '{"asr":"paraformer-zh"}', 'idle')`)
		resp, v = b.getJSON(t, "GET", "/api/v1/health")
		require.Equal(t, http.StatusOK, resp.StatusCode, "%v", v)
		require.Equal(t, "ready", v["status"])
		require.EqualValues(t, 1, v["workers_active"])
		require.Equal(t, []any{"funasr"}, v["engines"])

		resp, v = b.getJSON(t, "GET", "/api/v1/workers")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		workers := v["workers"].([]any)
		require.Len(t, workers, 4)
		first := workers[0].(map[string]any)
		require.Equal(t, "master-1", first["id"])
		require.Equal(t, true, first["active"])
		require.Equal(t, []any{"batch", "live", "final"}, first["queues"])
		require.Equal(t, map[string]any{"asr": "paraformer-zh"}, first["models"])
		for _, w := range workers[1:] {
			require.Equal(t, false, w.(map[string]any)["active"], "%v", w)
		}
	})
}

func TestHealthDatabaseDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The database goes away under the gateway.
	admin, err := pgx.Connect(context.Background(), dbtest.AdminURL(t))
	require.NoError(t, err)
	defer admin.Close(context.Background())
	_, err = admin.Exec(context.Background(), "DROP DATABASE "+b.pool.Config().ConnConfig.Database+" WITH (FORCE)")
	require.NoError(t, err)
	resp, v := b.getJSON(t, "GET", "/api/v1/health")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "unavailable", v["status"])
	require.Equal(t, "unreachable", v["database"])

	resp, v = b.getJSON(t, "GET", "/api/v1/asr/queue/status")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%v", v)
	require.Equal(t, asr.EUNAVAILABLE, v["code"])
}

func TestRouting(t *testing.T) {
	t.Parallel()

	t.Run("UnknownAPIPathIsJSON404", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, v := b.getJSON(t, "GET", "/api/v1/nope")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Equal(t, asr.ENOTFOUND, v["code"])

		resp, v = b.getJSON(t, "PUT", "/api/v1/asr/history")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.NotEmpty(t, v["error"])
	})

	t.Run("UIFallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, body := b.do(t, "GET", "/history/some-route", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
		require.Contains(t, string(body), "make frontend")
	})
}
