package storage

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// TestWriteError checks that a full, read-only or unwritable store gives a
// clear application error that keeps the file system's cause.
func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		code  string
		text  string
	}{
		{syscall.ENOSPC, asr.ESTORAGEFULL, "full"},
		{syscall.EDQUOT, asr.ESTORAGEFULL, "full"},
		{syscall.EROFS, asr.EUNAVAILABLE, "read-only"},
		{syscall.EACCES, asr.EUNAVAILABLE, "not writable"},
		{syscall.EIO, asr.EUNAVAILABLE, "cannot be written"},
	} {
		cause := &os.PathError{Op: "write", Path: "/store/.tmp/upload-1", Err: tc.errno}
		err := writeError(cause)
		if got := asr.ErrorCode(err); got != tc.code {
			t.Errorf("%v: code %q, want %q", tc.errno, got, tc.code)
		}
		if msg := asr.ErrorMessage(err); !strings.Contains(msg, tc.text) {
			t.Errorf("%v: message %q lacks %q", tc.errno, msg, tc.text)
		}
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v: cause lost: %v", tc.errno, err)
		}
	}
	if writeError(nil) != nil {
		t.Error("writeError(nil) != nil")
	}
	app := asr.Errorf(asr.ETOOLARGE, "big")
	if writeError(app) != app {
		t.Error("an application error must pass through")
	}
	if !errors.Is(writeError(&os.PathError{Err: fs.ErrPermission}), fs.ErrPermission) {
		t.Error("permission cause lost")
	}
}
