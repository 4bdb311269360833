package storage_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/storage"
	"github.com/stretchr/testify/require"
)

type testBundle struct {
	store *storage.Store
	dir   string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.New(dir)
	require.NoError(t, err)
	return &testBundle{store: store, dir: dir}
}

func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StageCommitOpenDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		data := bytes.Repeat([]byte("abc"), 1000)
		st, err := b.store.Stage(ctx, bytes.NewReader(data), 1<<20)
		require.NoError(t, err)
		require.EqualValues(t, len(data), st.Size())
		head := make([]byte, 3)
		_, err = st.ReadAt(head, 3)
		require.NoError(t, err)
		require.Equal(t, "abc", string(head))

		key := asr.AudioKey(uuid.New(), "wav", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		require.True(t, strings.HasPrefix(key, "uploads/2026/01/02/"))
		require.NoError(t, st.Commit(key))
		require.NoError(t, st.Discard()) // a no-op after Commit
		require.Empty(t, tmpFiles(t, b.dir))

		f, err := b.store.Open(key)
		require.NoError(t, err)
		got, err := io.ReadAll(f)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		require.Equal(t, data, got)
		require.EqualValues(t, len(data), f.Size())

		require.NoError(t, b.store.Delete(key))
		require.NoError(t, b.store.Delete(key))
		_, err = b.store.Open(key)
		require.Equal(t, asr.ENOTFOUND, asr.ErrorCode(err))
	})

	t.Run("TooLargeLeavesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Stage(ctx, bytes.NewReader(make([]byte, 101)), 100)
		require.Equal(t, asr.ETOOLARGE, asr.ErrorCode(err))
		require.Empty(t, tmpFiles(t, b.dir))

		st, err := b.store.Stage(ctx, bytes.NewReader(make([]byte, 100)), 100)
		require.NoError(t, err)
		require.NoError(t, st.Discard())
		require.Empty(t, tmpFiles(t, b.dir))
	})

	t.Run("RejectsKeysOutsideTheStore", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, key := range []string{"", "/etc/passwd", "../x.wav", "uploads/../../x", "uploads//x", `uploads\x`, "./x", "uploads/."} {
			_, err := b.store.Open(key)
			require.Equal(t, asr.EINVALID, asr.ErrorCode(err), key)
			require.Equal(t, asr.EINVALID, asr.ErrorCode(b.store.Delete(key)), key)
		}
		st, err := b.store.Stage(ctx, strings.NewReader("x"), 10)
		require.NoError(t, err)
		require.Equal(t, asr.EINVALID, asr.ErrorCode(st.Commit("../escape.wav")))
		require.NoError(t, st.Discard())
	})

	t.Run("NewRemovesStaleTempFiles", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		stale, fresh := filepath.Join(b.dir, ".tmp", "upload-old"), filepath.Join(b.dir, ".tmp", "upload-new")
		require.NoError(t, os.WriteFile(stale, []byte("x"), 0o600))
		require.NoError(t, os.WriteFile(fresh, []byte("x"), 0o600))
		old := time.Now().Add(-48 * time.Hour)
		require.NoError(t, os.Chtimes(stale, old, old))
		_, err := storage.New(b.dir)
		require.NoError(t, err)
		require.Equal(t, []string{"upload-new"}, tmpFiles(t, b.dir))
	})

	t.Run("CanceledContextStopsStaging", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := b.store.Stage(cctx, strings.NewReader("data"), 10)
		require.Error(t, err)
		require.Empty(t, tmpFiles(t, b.dir))
	})
}
