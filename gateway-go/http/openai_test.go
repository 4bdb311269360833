package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// openAIPost posts an OpenAI transcription request and returns the answer.
func (b *testBundle) openAIPost(t *testing.T, content []byte, fields map[string]string) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	fw, err := mw.CreateFormFile("file", "jfk.wav")
	require.NoError(t, err)
	_, _ = fw.Write(content)
	require.NoError(t, mw.Close())
	resp, err := http.Post(b.ts.URL+"/v1/audio/transcriptions", mw.FormDataContentType(), &body)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, got
}

// finishNext plays the worker: it waits for the next queued task and writes
// its result, as the worker's final transaction does.
func (b *testBundle) finishNext(t *testing.T, status string) {
	t.Helper()
	ctx := context.Background()
	var id string
	require.Eventually(t, func() bool {
		return b.pool.QueryRow(ctx, `SELECT id::text FROM transcriptions WHERE status = 'queued' ORDER BY created_at LIMIT 1`).Scan(&id) == nil
	}, 10*time.Second, 10*time.Millisecond)
	b.exec(t, `UPDATE transcriptions SET status = 'processing', started_at = now() - interval '2 seconds' WHERE id = $1`, id)
	if status == "failed" {
		b.exec(t, `UPDATE transcriptions SET status = 'failed', error = 'The audio could not be decoded.', finished_at = now() WHERE id = $1`, id)
		return
	}
	b.exec(t, `INSERT INTO segments (transcription_id, idx, start_s, end_s, text) VALUES
		($1, 0, 0.0, 5.5, 'And so my fellow Americans,'), ($1, 1, 5.5, 11.0, 'ask not what your country can do for you.')`, id)
	b.exec(t, `UPDATE transcriptions SET status = 'done', text = 'And so my fellow Americans, ask not what your country can do for you.',
		language = 'en', duration_s = 11.0, model = 'paraformer-en', engine = 'funasr', rtf = 0.1, progress = 1, finished_at = now()
		WHERE id = $1`, id)
}

func TestOpenAITranscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *asrhttp.Server) { s.OpenAITimeout = 10 * time.Second })
	select {
	case <-b.listener.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("listener not ready")
	}
	wav := dbtest.ReadSpeech(t, "jfk_en.wav")

	transcribe := func(fields map[string]string, status string) (*http.Response, []byte) {
		done := make(chan struct{})
		go func() { defer close(done); b.finishNext(t, status) }()
		resp, body := b.openAIPost(t, wav, fields)
		<-done
		return resp, body
	}

	t.Run("json", func(t *testing.T) {
		resp, body := transcribe(map[string]string{"model": "whisper-1", "language": "en", "prompt": "Kennedy", "temperature": "0.2"}, "done")
		require.Equal(t, 200, resp.StatusCode, string(body))
		require.JSONEq(t, `{"text":"And so my fellow Americans, ask not what your country can do for you."}`, string(body))
		id := resp.Header.Get("X-ASR-Task-ID")
		_, res := b.getJSON(t, "GET", "/api/v1/asr/result/"+id)
		require.Equal(t, "Kennedy", res["hotwords"])
		require.Equal(t, "en", res["language_requested"])
	})
	t.Run("verbose_json", func(t *testing.T) {
		resp, body := transcribe(map[string]string{"response_format": "verbose_json", "timestamp_granularities[]": "word"}, "done")
		require.Equal(t, 200, resp.StatusCode, string(body))
		var v map[string]any
		require.NoError(t, json.Unmarshal(body, &v))
		require.Equal(t, "transcribe", v["task"])
		require.Equal(t, "english", v["language"])
		require.InDelta(t, 11.0, v["duration"], 1e-9)
		segs := v["segments"].([]any)
		require.Len(t, segs, 2)
		require.JSONEq(t, `{"id":1,"seek":550,"start":5.5,"end":11,"text":"ask not what your country can do for you.","tokens":[],
			"temperature":0,"avg_logprob":0,"compression_ratio":0,"no_speech_prob":0}`, mustJSON(t, segs[1]))
	})
	for format, want := range map[string]string{
		"text": "And so my fellow Americans, ask not what your country can do for you.\n",
		"srt":  "1\n00:00:00,000 --> 00:00:05,500\nAnd so my fellow Americans,\n\n2\n00:00:05,500 --> 00:00:11,000\nask not what your country can do for you.\n",
		"vtt":  "WEBVTT\n\n00:00:00.000 --> 00:00:05.500\nAnd so my fellow Americans,\n\n00:00:05.500 --> 00:00:11.000\nask not what your country can do for you.\n",
	} {
		t.Run(format, func(t *testing.T) {
			resp, body := transcribe(map[string]string{"response_format": format}, "done")
			require.Equal(t, 200, resp.StatusCode, string(body))
			require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(string(body)))
		})
	}
	t.Run("failed", func(t *testing.T) {
		resp, body := transcribe(nil, "failed")
		require.Equal(t, 422, resp.StatusCode)
		require.JSONEq(t, `{"error":{"message":"The audio could not be decoded.","type":"invalid_request_error","param":"file","code":"corrupt_audio"}}`, string(body))
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			fields map[string]string
			param  string
		}{
			{map[string]string{"response_format": "xml"}, "response_format"},
			{map[string]string{"language": "english!"}, "language"},
			{map[string]string{"temperature": "hot"}, "temperature"},
			{map[string]string{"timestamp_granularities[]": "char"}, "timestamp_granularities"},
			{map[string]string{"stream": "true"}, "stream"},
		} {
			resp, body := b.openAIPost(t, wav, c.fields)
			require.Equal(t, 400, resp.StatusCode, string(body))
			var e asrhttp.OpenAIError
			require.NoError(t, json.Unmarshal(body, &e))
			require.Equal(t, "invalid_request_error", e.Error.Type)
			require.Equal(t, c.param, *e.Error.Param)
		}
		resp, body := b.openAIPost(t, []byte("definitely not audio"), nil)
		require.Equal(t, 415, resp.StatusCode, string(body))
		resp, _ = b.do(t, "GET", "/v1/chat/completions", nil)
		require.Equal(t, 404, resp.StatusCode)
	})
	t.Run("timeout", func(t *testing.T) {
		b := setup(t, func(s *asrhttp.Server) { s.OpenAITimeout = 300 * time.Millisecond })
		resp, body := b.openAIPost(t, wav, nil)
		require.Equal(t, 503, resp.StatusCode, string(body))
		require.Contains(t, string(body), "goes on as task")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM transcriptions WHERE status = 'queued'`))
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *asrhttp.Server) { s.MetricsService = nil })
	resp, _ := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
	require.Equal(t, 202, resp.StatusCode)
	b.do(t, "GET", "/api/v1/asr/result/nope", nil)

	resp, body := b.do(t, "GET", "/metrics", nil)
	require.Equal(t, 200, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	for _, name := range []string{"asr_http_requests_total", "asr_http_request_duration_seconds", "asr_uploads_total",
		"asr_upload_bytes_total", "asr_errors_total", "asr_tasks", "asr_live_sessions_open", "asr_workers_active",
		"asr_scrape_error", "go_goroutines"} {
		require.Contains(t, families, name)
	}
	require.Equal(t, 1.0, families["asr_uploads_total"].Metric[0].GetCounter().GetValue())
	var queued float64
	for _, m := range families["asr_tasks"].Metric {
		if m.Label[0].GetValue() == "queued" {
			queued = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, 1.0, queued)
	found := false
	for _, m := range families["asr_http_requests_total"].Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["route"] == "POST /api/v1/asr/submit" && labels["status"] == "202" {
			found = true
		}
	}
	require.True(t, found, "no request counted for the submit route")
	require.Equal(t, 1.0, families["asr_errors_total"].Metric[0].GetCounter().GetValue())
}
