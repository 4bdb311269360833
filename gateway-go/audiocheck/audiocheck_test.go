package audiocheck_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/lanasr/lanasr/gateway-go/audiocheck"
	"github.com/lanasr/lanasr/gateway-go/internal/dbtest"
	"github.com/stretchr/testify/require"
)

// wav builds a PCM WAV file with the given fmt fields and data size field,
// holding n bytes of samples.
func wav(channels uint16, rate uint32, bits uint16, dataSize uint32, n int) []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+n))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, channels)
	binary.Write(&b, binary.LittleEndian, rate)
	binary.Write(&b, binary.LittleEndian, rate*uint32(channels)*uint32(bits)/8)
	binary.Write(&b, binary.LittleEndian, channels*bits/8)
	binary.Write(&b, binary.LittleEndian, bits)
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, dataSize)
	b.Write(make([]byte, n))
	return b.Bytes()
}

func check(b []byte) (audiocheck.Format, error) {
	return audiocheck.Check(bytes.NewReader(b), int64(len(b)))
}

func TestSniff(t *testing.T) {
	t.Parallel()

	mp3Frame := func() []byte {
		// MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417-byte frames.
		f := make([]byte, 417)
		copy(f, []byte{0xFF, 0xFB, 0x90, 0x00})
		return f
	}
	adts := func() []byte {
		f := make([]byte, 20)
		copy(f, []byte{0xFF, 0xF1, 0x50, 0x80, 0x02, 0x9F, 0xFC}) // frame length 20
		return f
	}
	tests := []struct {
		name string
		head []byte
		want audiocheck.Format
	}{
		{"wav", wav(1, 16000, 16, 2, 2), audiocheck.WAV},
		{"rf64", append([]byte("RF64\xff\xff\xff\xffWAVE"), make([]byte, 8)...), audiocheck.WAV},
		{"mp3-id3", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), make([]byte, 10)...), audiocheck.MP3},
		{"mp3-sync", bytes.Repeat(mp3Frame(), 3), audiocheck.MP3},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), audiocheck.FLAC},
		{"ogg", append([]byte("OggS"), make([]byte, 40)...), audiocheck.OGG},
		{"opus", append(append([]byte("OggS"), make([]byte, 24)...), []byte("OpusHead\x01\x02")...), audiocheck.Opus},
		{"webm", append([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84}, []byte("webm")...), audiocheck.WebM},
		{"mkv", append([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x88}, []byte("matroska")...), audiocheck.MKV},
		{"mp4", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"), audiocheck.MP4},
		{"m4a", []byte("\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00"), audiocheck.M4A},
		{"mov", []byte("\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00"), audiocheck.MOV},
		{"aac", bytes.Repeat(adts(), 2), audiocheck.AAC},
		{"amr", []byte("#!AMR\n\x3c"), audiocheck.AMR},
		{"amr-wb", []byte("#!AMR-WB\n"), audiocheck.AMR},
		{"aiff", []byte("FORM\x00\x00\x10\x00AIFFCOMM"), audiocheck.AIFF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := audiocheck.Sniff(tt.head)
			require.True(t, ok)
			require.Equal(t, tt.want, got)
		})
	}

	for _, bad := range [][]byte{
		[]byte("\x89PNG\r\n\x1a\n"),
		[]byte("%PDF-1.7"),
		[]byte("GIF89a"),
		[]byte("\xFF\xD8\xFF\xE0JFIF"), // JPEG: 0xFF but no frame sync
		[]byte("RIFF\x00\x00\x00\x00AVI "),
		[]byte("hello, world"),
		append([]byte{0xFF, 0xFB, 0x90, 0x00}, make([]byte, 500)...), // one MP3 header, no second frame
		{},
	} {
		_, ok := audiocheck.Sniff(bad)
		require.False(t, ok, "%q", bad[:min(len(bad), 12)])
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()

	t.Run("RealSpeechFiles", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"jfk_en.wav", "aishell_BAC009S0724W0121_zh.wav", "funasr_example_zh.wav", "librispeech_1995-1837-0001_en.wav"} {
			b := dbtest.ReadSpeech(t, name)
			f, err := check(b)
			require.NoError(t, err, name)
			require.Equal(t, audiocheck.WAV, f)
			info, err := audiocheck.ParseWAV(bytes.NewReader(b), int64(len(b)))
			require.NoError(t, err)
			require.EqualValues(t, 1, info.Channels)
			require.EqualValues(t, 16000, info.SampleRate)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		jfk := dbtest.ReadSpeech(t, "jfk_en.wav")
		noFmt := append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00"), 1, 2, 3, 4)
		noData := wav(1, 16000, 16, 2, 2)[:36]
		tests := []struct {
			name string
			in   []byte
			code string
		}{
			{"Empty", nil, asr.EINVALID},
			{"PNG", []byte("\x89PNG\r\n\x1a\n\x00\x00"), asr.EUNSUPPORTEDMEDIA},
			{"Truncated", jfk[:len(jfk)/3], asr.ECORRUPTAUDIO},
			{"HeaderOnly", jfk[:40], asr.ECORRUPTAUDIO},
			{"NoFmt", noFmt, asr.ECORRUPTAUDIO},
			{"NoData", noData, asr.ECORRUPTAUDIO},
			{"ZeroChannels", wav(0, 16000, 16, 4, 4), asr.ECORRUPTAUDIO},
			{"TooManyChannels", wav(17, 16000, 16, 4, 4), asr.ECORRUPTAUDIO},
			{"RateTooLow", wav(1, 999, 16, 4, 4), asr.ECORRUPTAUDIO},
			{"RateTooHigh", wav(1, 400000, 16, 4, 4), asr.ECORRUPTAUDIO},
			{"OddBits", wav(1, 16000, 12, 4, 4), asr.ECORRUPTAUDIO},
			{"DataBeyondFile", wav(1, 16000, 16, 1000, 10), asr.ECORRUPTAUDIO},
			{"StreamingSizeButNoSamples", wav(1, 16000, 16, 0xFFFFFFFF, 0), asr.ECORRUPTAUDIO},
		}
		for _, tt := range tests {
			_, err := check(tt.in)
			require.Equal(t, tt.code, asr.ErrorCode(err), tt.name)
		}
	})

	t.Run("StreamingSizes", func(t *testing.T) {
		t.Parallel()
		for _, size := range []uint32{0, 0xFFFFFFFF} {
			f, err := check(wav(2, 48000, 24, size, 600))
			require.NoError(t, err)
			require.Equal(t, audiocheck.WAV, f)
		}
	})

	t.Run("NonWAVFormatsPassOnMagicAlone", func(t *testing.T) {
		t.Parallel()
		f, err := check([]byte("fLaC\x00\x00\x00\x22"))
		require.NoError(t, err)
		require.Equal(t, "flac", f.Ext)
	})
}

func FuzzSniff(f *testing.F) {
	f.Add(wav(1, 16000, 16, 4, 4))
	f.Add([]byte("RF64\xff\xff\xff\xffWAVEds64"))
	f.Add([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte{0xFF, 0xFB, 0x90, 0x00})
	f.Add([]byte{0xFF, 0xF1, 0x50, 0x80, 0x02, 0x9F, 0xFC})
	f.Add([]byte("\x00\x00\x00\x20ftypM4A "))
	f.Fuzz(func(t *testing.T, b []byte) {
		fmt1, ok := audiocheck.Sniff(b)
		fmt2, err := check(b)
		if err == nil {
			require.True(t, ok)
			require.Equal(t, fmt1, fmt2)
			require.NotEmpty(t, fmt2.Ext)
		}
		if len(b) > 0 && !ok {
			require.Equal(t, asr.EUNSUPPORTEDMEDIA, asr.ErrorCode(err))
		}
	})
}
