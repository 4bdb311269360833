package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	main "github.com/lanasr/lanasr/gateway-go/cmd/asr-gateway"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	url    string
	stdout *bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{url: dbtest.NewEmptyDatabase(t), stdout: &bytes.Buffer{}}
}

// newMain returns a Main that reads env instead of the process environment.
func newMain(b *testBundle, t *testing.T, env map[string]string) *main.Main {
	m := main.NewMain()
	m.Getenv = func(k string) string { return env[k] }
	m.Stdout = b.stdout
	m.Stderr = t.Output()
	return m
}

func TestMain_Migrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AppliesAndIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			m := newMain(b, t, map[string]string{"DATABASE_URL": b.url})
			require.NoError(t, m.ParseFlags(ctx, []string{"migrate"}))
			require.NoError(t, m.Run(ctx))
			require.NoError(t, m.Close())
		}
		require.Contains(t, b.stdout.String(), "schema at version 6 (was 0, latest 6)") // 0006_pieces.sql
		require.Contains(t, b.stdout.String(), "schema at version 6 (was 6, latest 6)")
	})
}

func TestMain_ParseFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("EnvThenFlags", func(t *testing.T) {
		t.Parallel()
		b := &testBundle{stdout: &bytes.Buffer{}}
		m := newMain(b, t, map[string]string{
			"DATABASE_URL": "postgresql://x/y", "ASR_HTTP_ADDR": ":9999", "ASR_MAX_UPLOAD_MB": "7",
			"ASR_WORKER_TIMEOUT_S": "2.5",
		})
		require.NoError(t, m.ParseFlags(ctx, []string{"serve", "-http-addr", ":1234"}))
		require.Equal(t, "serve", m.Command)
		require.Equal(t, ":1234", m.Config.HTTPAddr)
		require.Equal(t, int64(7), m.Config.MaxUploadMB)
		require.Equal(t, "2.5s", m.Config.WorkerTimeout.String())
		require.Equal(t, "./.data/audio", m.Config.StorageDir)
		require.Equal(t, 32, m.Config.LiveMaxSessions)
		require.Equal(t, int64(1024), m.Config.WSMaxFrameKB)
		require.Equal(t, "1m0s", m.Config.WSIdle.String())

		m = newMain(b, t, map[string]string{"DATABASE_URL": "postgresql://x/y", "ASR_LIVE_MAX_SESSIONS": "1000",
			"ASR_WS_MAX_FRAME_KB": "64", "ASR_WS_IDLE_S": "600"})
		require.NoError(t, m.ParseFlags(ctx, []string{"-live-max-sessions", "2000"}))
		require.Equal(t, 2000, m.Config.LiveMaxSessions)
		require.Equal(t, int64(64), m.Config.WSMaxFrameKB)
		require.Equal(t, "10m0s", m.Config.WSIdle.String())
	})

	t.Run("AccessAndLimits", func(t *testing.T) {
		t.Parallel()
		b := &testBundle{stdout: &bytes.Buffer{}}
		m := newMain(b, t, map[string]string{"DATABASE_URL": "postgresql://x/y"})
		require.NoError(t, m.ParseFlags(ctx, nil))
		require.Empty(t, m.Config.APIToken)
		require.Empty(t, m.Config.CORSOrigins)
		require.Equal(t, 4, m.Config.LiveMaxPerClient)
		require.Equal(t, "30s", m.Config.UploadIdle.String())
		require.Equal(t, "10m0s", m.Config.OpenAITimeout.String())

		m = newMain(b, t, map[string]string{"DATABASE_URL": "postgresql://x/y", "ASR_API_TOKEN": " s3cret ",
			"ASR_CORS_ORIGINS": "http://a.lan:3000/, https://b.lan ,", "ASR_LIVE_MAX_PER_CLIENT": "8",
			"ASR_UPLOAD_IDLE_S": "2.5", "ASR_OPENAI_TIMEOUT_S": "60"})
		require.NoError(t, m.ParseFlags(ctx, nil))
		require.Equal(t, "s3cret", m.Config.APIToken)
		require.Equal(t, []string{"http://a.lan:3000", "https://b.lan"}, m.Config.CORSOrigins)
		require.Equal(t, 8, m.Config.LiveMaxPerClient)
		require.Equal(t, "2.5s", m.Config.UploadIdle.String())
		require.Equal(t, "1m0s", m.Config.OpenAITimeout.String())

		// --help shows the variables but never the token's value.
		var help bytes.Buffer
		m = newMain(b, t, map[string]string{"ASR_API_TOKEN": "s3cret"})
		m.Stderr = &help
		require.ErrorIs(t, m.ParseFlags(ctx, []string{"-h"}), flag.ErrHelp)
		require.Contains(t, help.String(), "ASR_API_TOKEN")
		require.NotContains(t, help.String(), "s3cret")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		b := &testBundle{stdout: &bytes.Buffer{}}
		require.ErrorContains(t, newMain(b, t, nil).ParseFlags(ctx, nil), "DATABASE_URL")
		require.ErrorContains(t, newMain(b, t, nil).ParseFlags(ctx, []string{"frobnicate"}), "unknown command")
		env := map[string]string{"DATABASE_URL": "postgresql://x/y", "ASR_MAX_UPLOAD_MB": "lots"}
		require.ErrorContains(t, newMain(b, t, env).ParseFlags(ctx, nil), "max-upload-mb")
		for name, v := range map[string]string{"ASR_LIVE_MAX_SESSIONS": "0", "ASR_WS_MAX_FRAME_KB": "x", "ASR_WS_IDLE_S": "-1",
			"ASR_LIVE_MAX_PER_CLIENT": "0", "ASR_UPLOAD_IDLE_S": "never", "ASR_OPENAI_TIMEOUT_S": "0"} {
			env := map[string]string{"DATABASE_URL": "postgresql://x/y", name: v}
			require.Error(t, newMain(b, t, env).ParseFlags(ctx, nil), name)
		}
	})
}

func TestMain_Serve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StartsOnRandomPortAndServes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := newMain(b, t, map[string]string{"DATABASE_URL": b.url, "ASR_STORAGE_DIR": t.TempDir()})
		require.NoError(t, m.ParseFlags(ctx, []string{"-http-addr", "127.0.0.1:0", "-ui-dir", t.TempDir()}))
		require.NoError(t, m.Run(ctx)) // migrates the empty database first
		t.Cleanup(func() { require.NoError(t, m.Close()) })

		base := m.HTTPServer.URL()
		require.Contains(t, b.stdout.String(), "asr-gateway listening on "+base)

		resp, err := http.Get(base + "/api/v1/health")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, err := mw.CreateFormFile("audio", "jfk.wav")
		require.NoError(t, err)
		_, err = fw.Write(dbtest.ReadSpeech(t, "jfk_en.wav"))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		resp, err = http.Post(base+"/api/v1/asr/submit", mw.FormDataContentType(), &body)
		require.NoError(t, err)
		var sub map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&sub))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", sub)

		resp, err = http.Get(base + "/api/v1/asr/result/" + sub["task_id"].(string))
		require.NoError(t, err)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.Contains(string(raw), `"status":"queued"`), string(raw))

		resp, err = http.Get(base + "/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		// The live WebSocket at /: no worker serves queue live yet.
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/", &websocket.DialOptions{Subprotocols: []string{"binary"}})
		require.NoError(t, err)
		defer c.CloseNow()
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`{"mode":"2pass","wav_name":"x","is_speaking":true}`)))
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, msg, err := c.Read(rctx)
		require.NoError(t, err)
		require.Contains(t, string(msg), `"code":"no_live_worker"`)
		_, _, err = c.Read(rctx)
		require.Equal(t, websocket.StatusTryAgainLater, websocket.CloseStatus(err))
	})
}
