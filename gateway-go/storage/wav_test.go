package storage_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/stretchr/testify/require"
)

func TestCreateWAV(t *testing.T) {
	b := setup(t)
	key := asr.LiveAudioKey(uuid.New(), time.Now())
	w, err := b.store.CreateWAV(key, 16000)
	require.NoError(t, err)
	path := filepath.Join(b.dir, filepath.FromSlash(key))

	_, err = w.Write([]byte{1, 2, 3, 4})
	require.NoError(t, err)
	// Readable and consistent while still being written.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, raw, 48)
	require.Equal(t, uint32(4), binary.LittleEndian.Uint32(raw[40:]))
	require.Equal(t, uint32(40), binary.LittleEndian.Uint32(raw[4:]))

	_, err = w.Write(make([]byte, 1000))
	require.NoError(t, err)
	require.Equal(t, int64(1048), w.Size())
	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	raw, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, raw, 1048)
	require.Equal(t, "RIFF", string(raw[:4]))
	require.Equal(t, "WAVEfmt ", string(raw[8:16]))
	require.Equal(t, uint32(1040), binary.LittleEndian.Uint32(raw[4:]))
	require.Equal(t, uint32(16000), binary.LittleEndian.Uint32(raw[24:]))
	require.Equal(t, uint32(1004), binary.LittleEndian.Uint32(raw[40:]))
	require.Equal(t, []byte{1, 2, 3, 4}, raw[44:48])

	f, err := b.store.Open(key)
	require.NoError(t, err)
	require.Equal(t, int64(1048), f.Size())
	f.Close()

	_, err = b.store.CreateWAV(key, 16000)
	require.Equal(t, asr.ECONFLICT, asr.ErrorCode(err))
	_, err = b.store.CreateWAV("../x.wav", 16000)
	require.Equal(t, asr.EINVALID, asr.ErrorCode(err))
	require.NoError(t, b.store.Delete(key))
}
