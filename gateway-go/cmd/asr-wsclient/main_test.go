package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

func TestStride(t *testing.T) {
	n, d := Stride([]int{5, 10, 5}, 10, 16000)
	require.Equal(t, 1920, n)
	require.Equal(t, 60*time.Millisecond, d)
	n, d = Stride([]int{8, 8, 4}, 10, 16000)
	require.Equal(t, 1536, n)
	require.Equal(t, 48*time.Millisecond, d)
}

// fakeServer answers like a FunASR server: it counts audio and sends one
// partial per 10 frames, then a final message after is_speaking=false.
type fakeServer struct {
	mu     sync.Mutex
	config map[string]any
	frames []int
	idle   int
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	_, b, err := c.Read(ctx)
	if err != nil {
		return
	}
	f.mu.Lock()
	_ = json.Unmarshal(b, &f.config)
	if strings.HasPrefix(f.config["wav_name"].(string), "idle-") {
		f.idle++
	}
	f.mu.Unlock()
	total := 0
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			total += len(b)
			f.mu.Lock()
			f.frames = append(f.frames, len(b))
			n := len(f.frames)
			f.mu.Unlock()
			if n%10 == 0 {
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"mode":"2pass-online","text":"x","is_final":false}`))
			}
			continue
		}
		if strings.Contains(string(b), `"is_speaking": false`) {
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"mode":"2pass-offline","text":"done","is_final":true}`))
			_, _, _ = c.Read(ctx)
			return
		}
	}
}

func TestStream(t *testing.T) {
	f := &fakeServer{}
	ts := httptest.NewServer(f)
	defer ts.Close()
	var out, errOut bytes.Buffer
	wav := dbtest.SpeechFile(t, "jfk_en.wav")
	err := run(context.Background(), []string{"-url", "ws" + strings.TrimPrefix(ts.URL, "http"), "-speed", "0", wav}, &out, &errOut)
	require.NoError(t, err, errOut.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, "jfk_en", f.config["wav_name"])
	require.Equal(t, "2pass", f.config["mode"])
	require.EqualValues(t, 16000, f.config["audio_fs"])
	require.Len(t, f.frames, (352000+1919)/1920)
	require.Equal(t, 1920, f.frames[0])
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, len(f.frames)/10+1)
	var last Line
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.JSONEq(t, `{"mode":"2pass-offline","text":"done","is_final":true}`, string(last.Msg))
	require.InDelta(t, 11000, last.AudioSentMS, 1)
	require.Positive(t, last.RecvUnix)
}

func TestIdle(t *testing.T) {
	f := &fakeServer{}
	ts := httptest.NewServer(f)
	defer ts.Close()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-url", "ws" + strings.TrimPrefix(ts.URL, "http"),
		"-idle", "20", "-hold", "200ms", "-dial-rate", "1000"}, &out, &errOut)
	require.NoError(t, err)
	var sum IdleSummary
	require.NoError(t, json.Unmarshal(out.Bytes(), &sum))
	require.EqualValues(t, 20, sum.Opened)
	require.Zero(t, sum.Closed)
	f.mu.Lock()
	require.Equal(t, 20, f.idle)
	f.mu.Unlock()
}
