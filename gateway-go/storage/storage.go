// Package storage implements asr.AudioStore on a local directory (which may be
// an NFS or SMB export that workers mount). Files are written to a temporary
// file inside the store and renamed into place, so a reader never sees half a
// file, and they live only under server-generated keys.
package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// tmpDir is the store's directory of in-flight uploads, beside the keys so a
// rename never crosses file systems.
const tmpDir = ".tmp"

// Ensure the interfaces are implemented.
var (
	_ asr.AudioStore  = (*Store)(nil)
	_ asr.StagedAudio = (*staged)(nil)
	_ asr.AudioFile   = (*file)(nil)
)

// Store is an audio store rooted at a local directory.
type Store struct {
	root string

	// Sync makes Commit fsync each upload before renaming it into place, so a
	// power cut right after a 202 cannot leave a job whose audio is missing.
	// It costs one disk flush per upload (see README, ASR_STORAGE_FSYNC).
	Sync bool
}

// staleTemp is the age after which a temporary upload is an orphan of a
// crashed gateway.
const staleTemp = 24 * time.Hour

// New returns a store rooted at dir, creating it if needed and removing
// temporary files that a crashed gateway left behind. Returns EUNAVAILABLE
// when the directory cannot be created.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, asr.Errorf(asr.EUNAVAILABLE, "The audio store %s cannot be created: %v", abs, err)
	}
	s := &Store{root: abs}
	s.removeStaleTemp(time.Now().Add(-staleTemp))
	return s, nil
}

func (s *Store) removeStaleTemp(before time.Time) {
	entries, err := os.ReadDir(filepath.Join(s.root, tmpDir))
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(s.root, tmpDir, e.Name()))
		}
	}
}

// Root returns the store's absolute directory.
func (s *Store) Root() string { return s.root }

// Path returns the local path of key. Returns EINVALID when key is not a
// valid server-generated key.
func (s *Store) Path(key string) (string, error) {
	if !asr.ValidAudioKey(key) {
		return "", asr.Errorf(asr.EINVALID, "Invalid audio key.")
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Stage streams r into a temporary file. Returns ETOOLARGE when r holds more
// than limit bytes, and EUNAVAILABLE when the store cannot be written; the
// temporary file is removed on every error.
func (s *Store) Stage(ctx context.Context, r io.Reader, limit int64) (_ asr.StagedAudio, err error) {
	dir := filepath.Join(s.root, tmpDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, writeError(err)
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, writeError(err)
	}
	st := &staged{s: s, f: f}
	defer func() {
		if err != nil {
			_ = st.Discard()
		}
	}()

	n, err := io.Copy(fileWriter{f}, io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, asr.Errorf(asr.ETOOLARGE, "The audio file is larger than %d MiB.", max(limit>>20, 1))
	}
	st.size = n
	return st, nil
}

// Open opens the file at key. Returns EINVALID for a malformed key and
// ENOTFOUND when no file is there.
func (s *Store) Open(key string) (asr.AudioFile, error) {
	p, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, asr.Errorf(asr.ENOTFOUND, "The audio file is missing from the store.")
	} else if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &file{File: f, fi: fi}, nil
}

// Delete removes the file at key; a missing file is not an error. Returns
// EINVALID for a malformed key.
func (s *Store) Delete(key string) error {
	p, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type staged struct {
	s    *Store
	f    *os.File
	size int64
	done bool
}

func (st *staged) ReadAt(p []byte, off int64) (int, error) { return st.f.ReadAt(p, off) }

func (st *staged) Size() int64 { return st.size }

func (st *staged) Commit(key string) error {
	dst, err := st.s.Path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return writeError(err)
	}
	if st.s.Sync {
		if err := st.f.Sync(); err != nil {
			return writeError(err)
		}
	}
	if err := st.f.Close(); err != nil {
		return writeError(err)
	}
	if err := os.Chmod(st.f.Name(), 0o644); err != nil {
		return writeError(err)
	}
	if err := os.Rename(st.f.Name(), dst); err != nil {
		return writeError(err)
	}
	st.done = true
	return nil
}

func (st *staged) Discard() error {
	if st.done {
		return nil
	}
	st.done = true
	_ = st.f.Close()
	if err := os.Remove(st.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type file struct {
	*os.File
	fi os.FileInfo
}

func (f *file) ModTime() time.Time { return f.fi.ModTime() }
func (f *file) Size() int64        { return f.fi.Size() }

// writeError turns a failure to write the store into an application error:
// ESTORAGEFULL when the file system is full (or over quota), EUNAVAILABLE
// when it is read-only or not writable, each with a sentence that says so.
// The cause is kept for the log.
func writeError(err error) error {
	if err == nil || asr.ErrorCode(err) != asr.EINTERNAL {
		return err
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return &storeError{asr.Errorf(asr.ESTORAGEFULL, "The audio store is full: free some space (or delete old transcriptions) and try again."), err}
	case errors.Is(err, syscall.EROFS):
		return &storeError{asr.Errorf(asr.EUNAVAILABLE, "The audio store is read-only: the upload cannot be stored."), err}
	case errors.Is(err, fs.ErrPermission):
		return &storeError{asr.Errorf(asr.EUNAVAILABLE, "The audio store is not writable by the gateway: the upload cannot be stored."), err}
	}
	return &storeError{asr.Errorf(asr.EUNAVAILABLE, "The audio store cannot be written: %v", errors.Unwrap(err)), err}
}

// storeError is an application error that keeps the file system's error as
// its cause.
type storeError struct {
	app   *asr.Error
	cause error
}

func (e *storeError) Error() string   { return e.app.Error() + ": " + e.cause.Error() }
func (e *storeError) Unwrap() []error { return []error{e.app, e.cause} }

// fileWriter marks write errors of the staged file, so that a full store is
// told apart from a broken upload stream.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = writeError(err)
	}
	return n, err
}

// ctxReader stops a copy when its context ends (a client gone mid-upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
