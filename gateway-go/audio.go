package asr

import (
	"context"
	"io"
	"time"
)

// AudioFormat is a recognised audio (or audio-bearing video) container.
type AudioFormat struct {
	// Name is a short lower-case name, e.g. "wav".
	Name string
	// Ext is the file extension used in storage keys, without a dot.
	Ext string
	// ContentType is the MIME type served back.
	ContentType string
}

// AudioChecker validates an uploaded file of the given size and returns its
// format. It returns EINVALID for an empty file, EUNSUPPORTEDMEDIA for
// anything that is not audio, and ECORRUPTAUDIO for damaged audio.
type AudioChecker func(r io.ReaderAt, size int64) (AudioFormat, error)

// StagedAudio is an upload written to a temporary file in the audio store,
// waiting to be validated and given its key.
type StagedAudio interface {
	io.ReaderAt
	// Size returns the number of bytes written.
	Size() int64
	// Commit moves the file to key. Returns EINVALID for a malformed key.
	Commit(key string) error
	// Discard removes the temporary file; it is safe after Commit.
	Discard() error
}

// AudioFile is an opened stored audio file.
type AudioFile interface {
	io.ReadSeekCloser
	// ModTime returns the file's modification time.
	ModTime() time.Time
	// Size returns the file's size in bytes.
	Size() int64
}

// AudioStore keeps uploaded audio under server-generated keys.
type AudioStore interface {
	// Stage streams r into a temporary file. It returns ETOOLARGE, having
	// removed the file, when r yields more than limit bytes.
	Stage(ctx context.Context, r io.Reader, limit int64) (StagedAudio, error)
	// Open opens the file stored at key. Returns ENOTFOUND if it is missing.
	Open(key string) (AudioFile, error)
	// Delete removes the file at key; a missing file is not an error.
	Delete(key string) error
}
