package storage

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// Ensure the interfaces are implemented.
var (
	_ asr.LiveAudioStore = (*Store)(nil)
	_ asr.AudioSink      = (*wavFile)(nil)
)

// wavHeaderSize is the size of the canonical 44-byte PCM WAV header.
const wavHeaderSize = 44

// CreateWAV creates a mono PCM16 WAV file at key, written in place (not
// renamed at the end) so that what has arrived survives a crash. The header's
// sizes are kept current as data is appended, and fixed at Close. Returns
// EINVALID for a malformed key and ECONFLICT when the file exists.
func (s *Store) CreateWAV(key string, sampleRate int) (asr.AudioSink, error) {
	p, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, writeError(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if os.IsExist(err) {
		return nil, asr.Errorf(asr.ECONFLICT, "The audio file already exists.")
	} else if err != nil {
		return nil, writeError(err)
	}
	w := &wavFile{f: f}
	if _, err := f.Write(WAVHeader(sampleRate, 0)); err != nil {
		f.Close()
		_ = os.Remove(p)
		return nil, writeError(err)
	}
	return w, nil
}

// WAVHeader returns the 44-byte header of a mono PCM16 WAV file holding
// dataSize bytes of samples.
func WAVHeader(sampleRate int, dataSize uint32) []byte {
	h := make([]byte, wavHeaderSize)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+dataSize)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], 1) // mono
	binary.LittleEndian.PutUint32(h[24:], uint32(sampleRate))
	binary.LittleEndian.PutUint32(h[28:], uint32(sampleRate*2))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataSize)
	return h
}

type wavFile struct {
	mu     sync.Mutex
	f      *os.File
	data   int64
	closed bool
}

// Write appends samples and updates the header's sizes.
func (w *wavFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	n, err := w.f.WriteAt(p, wavHeaderSize+w.data)
	err = writeError(err)
	w.data += int64(n)
	if err != nil {
		return n, err
	}
	return n, w.fixHeader()
}

func (w *wavFile) fixHeader() error {
	size := uint32(min(w.data, 0xFFFFFFFF-36))
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], 36+size)
	if _, err := w.f.WriteAt(b[:], 4); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:], size)
	_, err := w.f.WriteAt(b[:], 40)
	return err
}

// Size returns the file's size so far, header included.
func (w *wavFile) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return wavHeaderSize + w.data
}

// Close fixes the header, syncs and closes the file.
func (w *wavFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.fixHeader()
	if e := w.f.Sync(); err == nil {
		err = e
	}
	if e := w.f.Close(); err == nil {
		err = e
	}
	return err
}
