package asr_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/stretchr/testify/require"
)

func TestParseLiveConfig(t *testing.T) {
	// FunASR's Python client.
	c, err := asr.ParseLiveConfig([]byte(`{"mode": "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10,
		"encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0, "audio_fs": 16000, "wav_name": "demo",
		"wav_format": "pcm", "is_speaking": true, "hotwords": "{\"阿里巴巴\": 20}", "itn": true}`))
	require.NoError(t, err)
	require.Equal(t, &asr.LiveConfig{Mode: "2pass", WavName: "demo", WavFormat: "pcm", AudioFS: 16000,
		ChunkSize: []int{5, 10, 5}, ChunkInterval: 10, Hotwords: `{"阿里巴巴": 20}`, ITN: true}, c)

	// FunASR's HTML5 client: no audio_fs from the microphone, "PCM" for a wav file.
	c, err = asr.ParseLiveConfig([]byte(`{"chunk_size":[5,10,5],"wav_name":"h5","is_speaking":true,"chunk_interval":10,"itn":false,"mode":"online"}`))
	require.NoError(t, err)
	require.Equal(t, 16000, c.AudioFS)
	require.False(t, c.ITN)
	c, err = asr.ParseLiveConfig([]byte(`{"mode":"offline","wav_format":"PCM","audio_fs":8000,"hotwords":{"a":1}}`))
	require.NoError(t, err)
	require.Equal(t, []any{"pcm", 8000, `{"a":1}`}, []any{c.WavFormat, c.AudioFS, c.Hotwords})

	// Defaults.
	c, err = asr.ParseLiveConfig([]byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, "2pass", c.Mode)

	for in, code := range map[string]string{
		`not json`:                  asr.EINVALID,
		`[1]`:                       asr.EINVALID,
		`null`:                      asr.EINVALID,
		`{"mode": "3pass"}`:         asr.EUNSUPPORTEDMEDIA,
		`{"mode": 2}`:               asr.EINVALID,
		`{"audio_fs": 44100}`:       asr.EUNSUPPORTEDMEDIA,
		`{"audio_fs": "x"}`:         asr.EUNSUPPORTEDMEDIA,
		`{"wav_format": "others"}`:  asr.EUNSUPPORTEDMEDIA,
		`{"chunk_size": [5, 10]}`:   asr.EINVALID,
		`{"chunk_interval": 0}`:     asr.EINVALID,
		`{"itn": "yes"}`:            asr.EINVALID,
		`{"wav_name": ["a", "b"]}`:  asr.EINVALID,
		`{"chunk_size": "5,10,5"}`:  asr.EINVALID,
		`{"chunk_interval": 10.5}`:  asr.EINVALID,
		`{"audio_fs": "16000"} `:    "",
		`{"is_speaking": false}   `: "",
	} {
		_, err := asr.ParseLiveConfig([]byte(in))
		require.Equal(t, code, asr.ErrorCode(err), in)
	}
}

func TestIsEndOfSpeech(t *testing.T) {
	for in, want := range map[string][2]bool{
		`{"is_speaking": false}`:                 [2]bool{true, true},
		`{"is_speaking": false, "is_end": true}`: [2]bool{true, true},
		`{"is_speaking": true}`:                  [2]bool{false, true},
		`{"chunk_size": [5,10,5]}`:               [2]bool{false, true},
		`{oops`:                                  [2]bool{false, false},
	} {
		end, ok := asr.IsEndOfSpeech([]byte(in))
		require.Equal(t, want, [2]bool{end, ok}, in)
	}
}

func TestParseCaption(t *testing.T) {
	id := uuid.New()
	c, err := asr.ParseCaption([]byte(fmt.Sprintf(`{"session_id": "%s", "msg": {"mode": "2pass-online", "text": "a"}}`, id)))
	require.NoError(t, err)
	require.Equal(t, id, c.SessionID)
	require.Equal(t, `{"mode": "2pass-online", "text": "a"}`, string(c.Msg))
	require.True(t, c.Partial)
	require.False(t, c.Final)
	c, _ = asr.ParseCaption([]byte(fmt.Sprintf(`{"session_id": "%s", "msg": {"mode": "2pass-offline", "text": "A.", "is_final": true}}`, id)))
	require.False(t, c.Partial)
	require.True(t, c.Final)
	c, _ = asr.ParseCaption([]byte(fmt.Sprintf(`{"session_id": "%s", "msg": {"error": "x", "code": "y"}}`, id)))
	require.False(t, c.Partial)
	for _, bad := range []string{`{}`, `{"session_id": "x", "msg": {}}`, fmt.Sprintf(`{"session_id": "%s", "msg": "s"}`, id), `nope`} {
		_, err := asr.ParseCaption([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestCaptionQueue(t *testing.T) {
	q := asr.NewCaptionQueue(4)
	msg := func(mode string, i int) asr.Caption {
		return asr.NewCaption(uuid.Nil, json.RawMessage(fmt.Sprintf(`{"mode":%q,"text":"%d"}`, mode, i)))
	}
	for i := 0; i < 10; i++ {
		mode := "2pass-online"
		if i%3 == 0 {
			mode = "2pass-offline"
		}
		q.Push(msg(mode, i))
	}
	select {
	case <-q.Ready():
	case <-time.After(time.Second):
		t.Fatal("not ready")
	}
	var texts []string
	for _, c := range q.Take() {
		var m map[string]string
		require.NoError(t, json.Unmarshal(c.Msg, &m))
		texts = append(texts, m["mode"][6:]+m["text"])
	}
	// Every final kept in order; the oldest partials dropped.
	require.Equal(t, []string{"offline0", "offline3", "offline6", "offline9"}, texts)
	require.Equal(t, 6, q.Dropped())
	q.Push(msg("online", 10))
	require.Len(t, q.Take(), 1)
	require.Empty(t, q.Take())
}

func TestLiveAudioKey(t *testing.T) {
	id := uuid.MustParse("0b6f0a6e-3f8a-4b53-9d55-7a8a7c1f2d3e")
	key := asr.LiveAudioKey(id, time.Date(2026, 3, 4, 23, 0, 0, 0, time.FixedZone("x", -3600)))
	require.Equal(t, "live/2026/03/05/0b6f0a6e-3f8a-4b53-9d55-7a8a7c1f2d3e.wav", key)
	require.True(t, asr.ValidAudioKey(key))
}
