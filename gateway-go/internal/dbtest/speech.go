package dbtest

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvSpeechDir names a variable that overrides where the speech samples are.
const EnvSpeechDir = "ASR_TEST_SPEECH_DIR"

// SpeechFile returns the path of a sample from shared/testdata/speech, found
// beside the repository checkout (walking up from the working directory) or
// in $ASR_TEST_SPEECH_DIR. The test fails when it is missing.
func SpeechFile(tb testing.TB, name string) string {
	tb.Helper()
	if dir := os.Getenv(EnvSpeechDir); dir != "" {
		return filepath.Join(dir, name)
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "testdata", "speech", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("speech sample %s not found in shared/testdata/speech above the working directory (set %s)", name, EnvSpeechDir)
		}
		dir = parent
	}
}

// ReadSpeech returns the bytes of a speech sample (see SpeechFile).
func ReadSpeech(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(SpeechFile(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
