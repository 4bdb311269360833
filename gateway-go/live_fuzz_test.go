package asr_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// FuzzLiveConfig feeds arbitrary text messages to the WebSocket
// configuration and end-of-speech parsers: they must never panic, and a
// configuration they accept must be one the gateway can serve.
func FuzzLiveConfig(f *testing.F) {
	for _, seed := range []string{
		`{"mode":"2pass","wav_name":"jfk","wav_format":"pcm","audio_fs":16000,"chunk_size":[5,10,5],"chunk_interval":10,"is_speaking":true,"hotwords":"{\"JFK\": 20}","itn":true}`,
		`{"mode":"online","audio_fs":8000,"wav_format":"wav"}`,
		`{"mode":"offline","chunk_size":"5,10,5"}`,
		`{"audio_fs":16000.0,"chunk_interval":1e3}`,
		`{"audio_fs":"16000","itn":"true"}`,
		`{"is_speaking":false}`,
		`{"mode":null,"hotwords":null}`,
		`[1,2,3]`, `null`, `{}`, `{"a":`, "\x00", `{"chunk_size":[1e309,0,-1]}`,
		`{"mode":"2pass"}{"mode":"online"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := asr.ParseLiveConfig(b)
		if err != nil {
			if code := asr.ErrorCode(err); code != asr.EINVALID && code != asr.EUNSUPPORTEDMEDIA {
				t.Fatalf("error code %q for %q", code, b)
			}
		} else {
			switch cfg.Mode {
			case asr.LiveModeOnline, asr.LiveModeOffline, asr.LiveMode2Pass:
			default:
				t.Fatalf("accepted mode %q", cfg.Mode)
			}
			if cfg.AudioFS != 16000 && cfg.AudioFS != 8000 {
				t.Fatalf("accepted audio_fs %d", cfg.AudioFS)
			}
			if cfg.WavFormat != "pcm" && cfg.WavFormat != "wav" {
				t.Fatalf("accepted wav_format %q", cfg.WavFormat)
			}
			// Both end up in PostgreSQL text columns, which refuse NUL and
			// invalid UTF-8.
			for _, v := range []string{cfg.WavName, cfg.Hotwords} {
				if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
					t.Fatalf("accepted text %q that PostgreSQL refuses", v)
				}
			}
			if cfg.ChunkInterval < 0 {
				t.Fatalf("accepted chunk_interval %d", cfg.ChunkInterval)
			}
		}
		_, _ = asr.IsEndOfSpeech(b)
	})
}
