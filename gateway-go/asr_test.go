package asr_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/stretchr/testify/require"
)

func TestErrorCode(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", asr.ErrorCode(nil))
	require.Equal(t, asr.EINTERNAL, asr.ErrorCode(errors.New("x")))
	err := fmt.Errorf("wrapped: %w", asr.Errorf(asr.ENOTFOUND, "Task %d not found.", 7))
	require.Equal(t, asr.ENOTFOUND, asr.ErrorCode(err))
	require.Equal(t, "Task 7 not found.", asr.ErrorMessage(err))
	require.Equal(t, "Internal error.", asr.ErrorMessage(errors.New("secret detail")))
}

func TestParseTaskID(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	got, err := asr.ParseTaskID(id.String())
	require.NoError(t, err)
	require.Equal(t, id, got)
	for _, bad := range []string{"", "x", "urn:uuid:" + id.String(), "{" + id.String() + "}", id.String()[:35]} {
		_, err := asr.ParseTaskID(bad)
		require.Equal(t, asr.EINVALID, asr.ErrorCode(err), bad)
	}
}

func TestAudioKey(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("6f1c1c9e-4b7a-4a4e-9a51-1f0d2c3b4a59")
	when := time.Date(2026, 11, 2, 23, 30, 0, 0, time.FixedZone("CST", 8*3600))
	key := asr.AudioKey(id, "m4a", when)
	require.Equal(t, "uploads/2026/11/02/6f1c1c9e-4b7a-4a4e-9a51-1f0d2c3b4a59.m4a", key)
	require.True(t, asr.ValidAudioKey(key))
	for _, bad := range []string{"", "/abs", "a/../b", "../a", "a//b", "a/./b", `a\b`, "a/", "a\x00b"} {
		require.False(t, asr.ValidAudioKey(bad), bad)
	}
}
