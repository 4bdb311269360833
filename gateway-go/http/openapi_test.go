package http_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

// loadOpenAPI parses and validates the embedded description, with its
// server set to base.
func loadOpenAPI(t *testing.T, base string) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(asrhttp.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return doc, router
}

func init() {
	for _, ct := range []string{"application/x-subrip", "text/vtt", "text/event-stream"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	for _, ct := range []string{"audio/wav", "audio/x-wav", "audio/mpeg", "audio/flac", "audio/ogg"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc, _ := loadOpenAPI(t, "http://localhost")
	for _, pattern := range asrhttp.NewServer().Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		require.True(t, ok, pattern)
		item := doc.Paths.Value(path)
		require.NotNil(t, item, "route %s is not in openapi.json", pattern)
		require.NotNil(t, item.GetOperation(method), "route %s is not in openapi.json", pattern)
	}
	// And nothing is described that is not served.
	served := map[string]bool{}
	for _, pattern := range asrhttp.NewServer().Routes() {
		served[pattern] = true
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			require.True(t, served[method+" "+path], "openapi.json describes %s %s, which is not served", method, path)
		}
	}
}

// checkResponse validates one real exchange against the description.
func checkResponse(t *testing.T, router routers.Router, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	route, params, err := router.FindRoute(req)
	require.NoError(t, err, "%s %s", req.Method, req.URL)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	require.NoError(t, openapi3filter.ValidateResponse(context.Background(), out),
		"%s %s → %d %s", req.Method, req.URL, resp.StatusCode, truncate(body))
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func TestOpenAPIResponsesValidate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, router := loadOpenAPI(t, b.ts.URL)

	exchange := func(method, path string, body io.Reader, ctype string) int {
		t.Helper()
		req, err := http.NewRequest(method, b.ts.URL+path, body)
		require.NoError(t, err)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		vreq, _ := http.NewRequest(method, b.ts.URL+path, nil)
		checkResponse(t, router, vreq, resp, got)
		return resp.StatusCode
	}
	upload := func(path, field string, content []byte, fields map[string]string) int {
		t.Helper()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range fields {
			require.NoError(t, mw.WriteField(k, v))
		}
		fw, err := mw.CreateFormFile(field, "a.wav")
		require.NoError(t, err)
		_, _ = fw.Write(content)
		require.NoError(t, mw.Close())
		return exchange(http.MethodPost, path, &buf, mw.FormDataContentType())
	}

	wav := dbtest.ReadSpeech(t, "jfk_en.wav")
	require.Equal(t, 202, upload("/api/v1/asr/submit", "audio", wav, map[string]string{"language": "en"}))
	require.Equal(t, 415, upload("/api/v1/asr/submit", "audio", []byte("plain text, not audio"), nil))
	require.Equal(t, 400, upload("/api/v1/asr/submit", "audio", wav, map[string]string{"priority": "99"}))
	require.Equal(t, 400, upload("/v1/audio/transcriptions", "file", wav, map[string]string{"response_format": "xml"}))
	require.Equal(t, 415, upload("/v1/audio/transcriptions", "file", []byte("plain text, not audio"), nil))

	var queued string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT id::text FROM transcriptions`).Scan(&queued))
	done := b.insertDone(t, "talk.wav", "你好世界", [][3]any{{0.0, 1.5, "你好"}, {1.5, 3.0, "世界"}})
	missing := "00000000-0000-4000-8000-000000000000"

	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/asr/result/" + queued, 200},
		{"GET", "/api/v1/asr/result/" + done, 200},
		{"GET", "/api/v1/asr/result/" + missing, 404},
		{"GET", "/api/v1/asr/result/nope", 400},
		{"GET", "/api/v1/asr/history?limit=5&q=%E4%BD%A0", 200},
		{"GET", "/api/v1/asr/history?limit=0", 400},
		{"GET", "/api/v1/asr/audio/" + queued, 200},
		{"GET", "/api/v1/asr/audio/" + done, 404},
		{"GET", "/api/v1/asr/export/" + done + ".srt", 200},
		{"GET", "/api/v1/asr/export/" + done + ".vtt", 200},
		{"GET", "/api/v1/asr/export/" + done + ".txt", 200},
		{"GET", "/api/v1/asr/export/" + done + ".json", 200},
		{"GET", "/api/v1/asr/export/" + queued + ".srt", 409},
		{"GET", "/api/v1/asr/queue/status", 200},
		{"GET", "/api/v1/workers", 200},
		{"GET", "/api/v1/health", 503},
		{"GET", "/api/v1/events?task_id=nope", 400},
		{"GET", "/api/v1/asr/stream", 426},
		{"GET", "/api/v1/openapi.json", 200},
		{"GET", "/v1/models", 200},
		{"GET", "/metrics", 200},
		{"POST", "/api/v1/asr/retry/" + done, 409},
		{"POST", "/api/v1/asr/cancel/" + queued, 200},
		{"POST", "/api/v1/asr/retry/" + queued, 202},
		{"POST", "/api/v1/asr/cancel/" + done, 409},
		{"DELETE", "/api/v1/asr/task/" + done, 200},
		{"DELETE", "/api/v1/asr/task/" + done, 404},
	} {
		require.Equal(t, c.status, exchange(c.method, c.path, nil, ""), "%s %s", c.method, c.path)
	}
	b.exec(t, `INSERT INTO workers (id, host, pid, device, engine, queues, models, state, last_heartbeat)
		VALUES ('w1', 'h', 1, 'cpu', 'funasr', '{batch}', '{"asr": "paraformer-zh", "vad": "fsmn-vad"}', 'idle', now())`)
	require.Equal(t, 200, exchange("GET", "/api/v1/health", nil, ""))
	require.Equal(t, 200, exchange("GET", "/api/v1/workers", nil, ""))
	require.Equal(t, 200, exchange("GET", "/v1/models", nil, ""))
}
