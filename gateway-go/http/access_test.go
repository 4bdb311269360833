package http_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	asrhttp "github.com/lanasr/lanasr/gateway-go/http"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

func TestAPIToken(t *testing.T) {
	t.Parallel()
	const token = "tok-3f9a"
	b := setup(t, func(s *asrhttp.Server) { s.APIToken = token })

	status := func(method, path string, hdr map[string]string) int {
		resp, _ := b.do(t, method, path, hdr)
		return resp.StatusCode
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	for _, path := range []string{"/api/v1/asr/history", "/api/v1/workers", "/api/v1/asr/queue/status", "/metrics",
		"/api/v1/openapi.json", "/v1/models", "/api/v1/nope", "/api/v1/events?task_id=x"} {
		require.Equal(t, 401, status("GET", path, nil), path)
		require.Equal(t, 401, status("GET", path, map[string]string{"Authorization": "Bearer wrong"}), path)
		require.Equal(t, 401, status("GET", path, map[string]string{"Authorization": "Basic " + token}), path)
		require.NotEqual(t, 401, status("GET", path, bearer), path)
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		require.NotEqual(t, 401, status("GET", path+sep+"token="+token, nil), path)
	}
	// The health check and the UI's files need no token.
	require.Equal(t, 503, status("GET", "/api/v1/health", nil))
	require.NotEqual(t, 401, status("GET", "/", nil))
	require.NotEqual(t, 401, status("GET", "/assets/app.js", nil))

	// Errors are JSON: the API's shape, or OpenAI's under /v1.
	_, body := b.getJSON(t, "GET", "/api/v1/asr/history")
	require.Equal(t, "unauthorized", body["code"])
	_, body = b.getJSON(t, "GET", "/v1/models")
	require.Equal(t, "invalid_api_key", body["error"].(map[string]any)["code"])

	// Uploads are refused before a byte is stored.
	resp, _ := b.submit(t, "audio", "a.wav", dbtest.ReadSpeech(t, "jfk_en.wav"), nil)
	require.Equal(t, 401, resp.StatusCode)
	b.requireNoLeftovers(t)

	// WebSockets: refused at the handshake without the token, accepted with ?token=.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, wresp, err := websocket.Dial(ctx, wsURL(b, "/api/v1/asr/stream"), nil)
	require.Error(t, err)
	require.Equal(t, 401, wresp.StatusCode)
	c, _, err := websocket.Dial(ctx, wsURL(b, "/api/v1/asr/stream?token="+token), nil)
	require.NoError(t, err)
	c.CloseNow() //nolint:errcheck
}

func TestCORS(t *testing.T) {
	t.Parallel()
	t.Run("SameOriginByDefault", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resp, _ := b.do(t, "GET", "/api/v1/asr/history", map[string]string{"Origin": "http://evil.example"})
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		resp, _ = b.do(t, "OPTIONS", "/api/v1/asr/history", map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
		require.Equal(t, 403, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})
	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(s *asrhttp.Server) {
			s.CORSOrigins = []string{"http://app.lan:3000"}
			s.APIToken = "t"
		})
		pre := map[string]string{"Origin": "http://app.lan:3000", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization"}
		resp, _ := b.do(t, "OPTIONS", "/api/v1/asr/submit", pre) // no token: preflights never carry one
		require.Equal(t, 204, resp.StatusCode)
		require.Equal(t, "http://app.lan:3000", resp.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "DELETE")

		resp, _ = b.do(t, "GET", "/api/v1/asr/history", map[string]string{"Origin": "http://app.lan:3000", "Authorization": "Bearer t"})
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "http://app.lan:3000", resp.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, resp.Header.Values("Vary"), "Origin")

		resp, _ = b.do(t, "GET", "/api/v1/asr/history", map[string]string{"Origin": "http://other.lan", "Authorization": "Bearer t"})
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
		resp, _ = b.do(t, "OPTIONS", "/api/v1/asr/submit", map[string]string{"Origin": "http://other.lan", "Access-Control-Request-Method": "POST"})
		require.Equal(t, 403, resp.StatusCode)
	})
	t.Run("Any", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(s *asrhttp.Server) { s.CORSOrigins = []string{"*"} })
		resp, _ := b.do(t, "GET", "/api/v1/asr/history", map[string]string{"Origin": "http://x.lan"})
		require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	})
}

func TestOversizedJSONBody(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insertDone(t, "a.wav", "x", nil)
	resp, err := http.Post(b.ts.URL+"/api/v1/asr/retry/"+id, "application/json", bytes.NewReader(bytes.Repeat([]byte(" "), 1<<20)))
	require.NoError(t, err)
	body := decode(t, resp)
	require.Equal(t, 413, resp.StatusCode)
	require.Equal(t, "too_large", body["code"])
}

func TestHostileFilenames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wav := dbtest.ReadSpeech(t, "jfk_en.wav")
	for _, c := range []struct{ in, want string }{
		{"../../../etc/passwd.wav", "passwd.wav"},
		{`..\..\windows\system32\a.wav`, "a.wav"},
		{"a\tb\u202ered\u200b\u0085.wav", "abred.wav"},
		{"..", "audio.wav"},
		{strings.Repeat("长", 500) + ".wav", strings.Repeat("长", 200)},
		{"\xff\xfe.wav", ".wav"},
	} {
		resp, body := b.submit(t, "audio", c.in, wav, nil)
		require.Equal(t, 202, resp.StatusCode, "%q: %v", c.in, body)
		require.Equal(t, c.want, body["filename"], "%q", c.in)
		_, res := b.getJSON(t, "GET", "/api/v1/asr/result/"+body["task_id"].(string))
		require.Equal(t, c.want, res["filename"])
	}
	// RFC 2231 encoding smuggles NUL, slashes and escapes past the header parser.
	var raw bytes.Buffer
	raw.WriteString("--b\r\nContent-Disposition: form-data; name=\"audio\"; filename*=UTF-8''..%2F..%2Fa%00b%1B%0D%0A.wav\r\n\r\n")
	raw.Write(wav)
	raw.WriteString("\r\n--b--\r\n")
	resp, err := http.Post(b.ts.URL+"/api/v1/asr/submit", "multipart/form-data; boundary=b", &raw)
	require.NoError(t, err)
	body := decode(t, resp)
	require.Equal(t, 202, resp.StatusCode, "%v", body)
	require.Equal(t, "ab.wav", body["filename"])

	// Only server-generated keys exist in the store.
	require.NoError(t, filepath.WalkDir(b.storeDir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if !d.IsDir() {
			require.Regexp(t, `uploads/\d{4}/\d\d/\d\d/[0-9a-f-]{36}\.wav$`, filepath.ToSlash(p))
		}
		return nil
	}))
}

func TestSlowUploadIsCutOff(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *asrhttp.Server) { s.UploadIdleTimeout = 300 * time.Millisecond })

	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	fw, err := mw.CreateFormFile("audio", "slow.wav")
	require.NoError(t, err)
	_, _ = fw.Write(dbtest.ReadSpeech(t, "jfk_en.wav")[:4096])

	conn, err := net.Dial("tcp", strings.TrimPrefix(b.ts.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /api/v1/asr/submit HTTP/1.1\r\nHost: x\r\nContent-Type: "+mw.FormDataContentType()+
		"\r\nContent-Length: 10000000\r\n\r\n")
	require.NoError(t, err)
	_, err = conn.Write(head.Bytes())
	require.NoError(t, err)
	// Then nothing: the gateway gives up, answers 408 and removes the temporary file.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, 408, resp.StatusCode)
	require.Eventually(t, func() bool {
		n := 0
		_ = filepath.WalkDir(b.storeDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n == 0
	}, 5*time.Second, 50*time.Millisecond)
	b.requireNoLeftovers(t)
}

func TestLivePerClientLimit(t *testing.T) {
	t.Parallel()
	b := liveBundle(t, func(s *asrhttp.Server) { s.LiveMaxPerClient = 2 })
	var conns []*websocket.Conn
	for range 2 {
		c := dial(t, b, "/api/v1/asr/stream")
		sendJSON(t, c, config(nil))
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return b.srv.LiveSessions() == 2 }, 5*time.Second, 20*time.Millisecond)
	c := dial(t, b, "/api/v1/asr/stream")
	expectError(t, c, "too_many_sessions", websocket.StatusTryAgainLater)
	conns[0].Close(websocket.StatusNormalClosure, "") //nolint:errcheck
	require.Eventually(t, func() bool { return b.srv.LiveSessions() == 1 }, 5*time.Second, 20*time.Millisecond)
	c = dial(t, b, "/api/v1/asr/stream")
	sendJSON(t, c, config(nil))
	require.Eventually(t, func() bool { return b.srv.LiveSessions() == 2 }, 5*time.Second, 20*time.Millisecond)
}
