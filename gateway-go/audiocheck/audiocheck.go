// Package audiocheck recognises audio containers from their magic bytes and
// checks the structure of WAV files, so the gateway rejects what is not audio
// before a worker ever sees it.
package audiocheck

import (
	"bytes"
	"encoding/binary"
	"io"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// Format is a recognised audio (or audio-bearing video) container.
type Format = asr.AudioFormat

// Ensure Check is an asr.AudioChecker.
var _ asr.AudioChecker = Check

// The formats Sniff recognises. Their Ext values are the whitelist of
// extensions that appear in storage keys.
var (
	WAV  = Format{Name: "wav", Ext: "wav", ContentType: "audio/wav"}
	MP3  = Format{Name: "mp3", Ext: "mp3", ContentType: "audio/mpeg"}
	FLAC = Format{Name: "flac", Ext: "flac", ContentType: "audio/flac"}
	OGG  = Format{Name: "ogg", Ext: "ogg", ContentType: "audio/ogg"}
	Opus = Format{Name: "opus", Ext: "opus", ContentType: "audio/ogg; codecs=opus"}
	WebM = Format{Name: "webm", Ext: "webm", ContentType: "audio/webm"}
	MKV  = Format{Name: "mkv", Ext: "mkv", ContentType: "video/x-matroska"}
	MP4  = Format{Name: "mp4", Ext: "mp4", ContentType: "video/mp4"}
	M4A  = Format{Name: "m4a", Ext: "m4a", ContentType: "audio/mp4"}
	MOV  = Format{Name: "mov", Ext: "mov", ContentType: "video/quicktime"}
	AAC  = Format{Name: "aac", Ext: "aac", ContentType: "audio/aac"}
	AMR  = Format{Name: "amr", Ext: "amr", ContentType: "audio/amr"}
	AIFF = Format{Name: "aiff", Ext: "aiff", ContentType: "audio/aiff"}
)

// HeadSize is the number of leading bytes Sniff looks at.
const HeadSize = 4096

// Sniff returns the format whose magic bytes start head. It looks at no more
// than HeadSize bytes and reports false when none matches.
func Sniff(head []byte) (Format, bool) {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	switch {
	case len(head) >= 12 && (bytes.HasPrefix(head, []byte("RIFF")) || bytes.HasPrefix(head, []byte("RF64")) ||
		bytes.HasPrefix(head, []byte("BW64"))) && string(head[8:12]) == "WAVE":
		return WAV, true
	case bytes.HasPrefix(head, []byte("fLaC")):
		return FLAC, true
	case bytes.HasPrefix(head, []byte("OggS")):
		if len(head) >= 36 && string(head[28:36]) == "OpusHead" {
			return Opus, true
		}
		return OGG, true
	case bytes.HasPrefix(head, []byte{0x1A, 0x45, 0xDF, 0xA3}):
		if bytes.Contains(head[:min(len(head), 64)], []byte("webm")) {
			return WebM, true
		}
		return MKV, true
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		switch string(head[8:12]) {
		case "M4A ", "M4B ", "M4P ":
			return M4A, true
		case "qt  ":
			return MOV, true
		}
		return MP4, true
	case bytes.HasPrefix(head, []byte("#!AMR")):
		return AMR, true
	case len(head) >= 12 && bytes.HasPrefix(head, []byte("FORM")) &&
		(string(head[8:12]) == "AIFF" || string(head[8:12]) == "AIFC"):
		return AIFF, true
	case len(head) >= 10 && bytes.HasPrefix(head, []byte("ID3")) && head[3] < 0xFF && head[5]&0x0F == 0:
		return MP3, true
	case isMP3Stream(head):
		return MP3, true
	case isADTSStream(head):
		return AAC, true
	}
	return Format{}, false
}

// Check validates the file in r, of the given size: it must be non-empty
// (EINVALID), of a recognised format (EUNSUPPORTEDMEDIA) and, for WAV,
// structurally sound (ECORRUPTAUDIO).
func Check(r io.ReaderAt, size int64) (Format, error) {
	if size <= 0 {
		return Format{}, asr.Errorf(asr.EINVALID, "The audio file is empty.")
	}
	head := make([]byte, min(size, HeadSize))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return Format{}, err
	}
	f, ok := Sniff(head)
	if !ok {
		return Format{}, asr.Errorf(asr.EUNSUPPORTEDMEDIA, "The file is not a supported audio or video format.")
	}
	if f == WAV {
		if err := checkWAV(r, size); err != nil {
			return Format{}, err
		}
	}
	return f, nil
}

// WAVInfo describes a WAV file's fmt and data chunks.
type WAVInfo struct {
	AudioFormat   uint16
	Channels      uint16
	SampleRate    uint32
	BitsPerSample uint16
	DataOffset    int64
	DataSize      int64
}

func corrupt(format string, args ...any) error {
	return asr.Errorf(asr.ECORRUPTAUDIO, "Corrupt WAV file: "+format, args...)
}

func checkWAV(r io.ReaderAt, size int64) error {
	_, err := ParseWAV(r, size)
	return err
}

// ParseWAV walks the chunks of a RIFF/RF64 WAVE file and returns its format.
// It returns ECORRUPTAUDIO when the fmt chunk is missing or insane, the data
// chunk is missing, or a chunk extends beyond the file (truncated).
func ParseWAV(r io.ReaderAt, size int64) (*WAVInfo, error) {
	var hdr [12]byte
	if size < 12 {
		return nil, corrupt("truncated header.")
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, corrupt("unreadable header.")
	}
	rf64 := string(hdr[0:4]) != "RIFF"

	var (
		info      WAVInfo
		haveFmt   bool
		ds64Data  int64 = -1
		off       int64 = 12
		chunkHead [8]byte
	)
	for i := 0; i < 10000; i++ {
		if off+8 > size {
			break
		}
		if _, err := r.ReadAt(chunkHead[:], off); err != nil {
			return nil, corrupt("unreadable chunk header.")
		}
		id := string(chunkHead[0:4])
		csize := int64(binary.LittleEndian.Uint32(chunkHead[4:8]))
		body := off + 8

		switch id {
		case "ds64":
			if !rf64 || csize < 24 || body+24 > size {
				return nil, corrupt("bad ds64 chunk.")
			}
			var b [24]byte
			if _, err := r.ReadAt(b[:], body); err != nil {
				return nil, corrupt("unreadable ds64 chunk.")
			}
			ds64Data = int64(binary.LittleEndian.Uint64(b[8:16]))
		case "fmt ":
			if csize < 16 || body+16 > size {
				return nil, corrupt("truncated fmt chunk.")
			}
			var b [16]byte
			if _, err := r.ReadAt(b[:], body); err != nil {
				return nil, corrupt("unreadable fmt chunk.")
			}
			info.AudioFormat = binary.LittleEndian.Uint16(b[0:2])
			info.Channels = binary.LittleEndian.Uint16(b[2:4])
			info.SampleRate = binary.LittleEndian.Uint32(b[4:8])
			info.BitsPerSample = binary.LittleEndian.Uint16(b[14:16])
			if err := saneFmt(&info); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, corrupt("data chunk before fmt chunk.")
			}
			info.DataOffset = body
			avail := size - body
			switch {
			case rf64 && csize == 0xFFFFFFFF && ds64Data >= 0:
				csize = ds64Data
			case csize == 0 || csize == 0xFFFFFFFF:
				// A streaming writer did not know the size: take what is there.
				csize = avail
			}
			if csize > avail {
				return nil, corrupt("truncated: the data chunk declares %d bytes but only %d are present.", csize, avail)
			}
			if csize == 0 {
				return nil, corrupt("no audio samples.")
			}
			info.DataSize = csize
			return &info, nil
		}
		if id != "data" && body+csize > size {
			return nil, corrupt("truncated %q chunk.", id)
		}
		off = body + csize + csize&1
	}
	if !haveFmt {
		return nil, corrupt("no fmt chunk.")
	}
	return nil, corrupt("no data chunk.")
}

func saneFmt(info *WAVInfo) error {
	if info.Channels < 1 || info.Channels > 16 {
		return corrupt("%d channels.", info.Channels)
	}
	if info.SampleRate < 1000 || info.SampleRate > 384000 {
		return corrupt("sample rate %d Hz.", info.SampleRate)
	}
	bits := info.BitsPerSample
	switch info.AudioFormat {
	case 1, 0xFFFE: // PCM, WAVE_FORMAT_EXTENSIBLE
		if bits != 8 && bits != 16 && bits != 24 && bits != 32 && bits != 64 {
			return corrupt("%d bits per sample.", bits)
		}
	case 3: // IEEE float
		if bits != 32 && bits != 64 {
			return corrupt("%d bits per float sample.", bits)
		}
	default: // ADPCM, A-law, mu-law and friends: loosely.
		if bits > 64 {
			return corrupt("%d bits per sample.", bits)
		}
	}
	return nil
}

// MPEG audio tables, for frame lengths: kbit/s by [version][layer][index].
var mp3Bitrates = [2][3][16]int{
	{ // MPEG-1: layer I, II, III
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},
	},
	{ // MPEG-2 and 2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},
	},
}

var mp3Rates = [4][3]int{ // by version bits (00=2.5, 01=reserved, 10=2, 11=1)
	{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000},
}

// mp3FrameLen returns the length of the MPEG audio frame whose header starts
// b, or 0 when b does not start a valid header.
func mp3FrameLen(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return 0
	}
	ver := (b[1] >> 3) & 3
	layerBits := (b[1] >> 1) & 3
	bri := b[2] >> 4
	sri := (b[2] >> 2) & 3
	pad := int((b[2] >> 1) & 1)
	if ver == 1 || layerBits == 0 || bri == 0 || bri == 15 || sri == 3 {
		return 0
	}
	layer := 3 - int(layerBits) // 0 = layer I
	vi := 1
	if ver == 3 {
		vi = 0
	}
	bitrate := mp3Bitrates[vi][layer][bri] * 1000
	rate := mp3Rates[ver][sri]
	switch {
	case layer == 0:
		return (12*bitrate/rate + pad) * 4
	case layer == 2 && vi == 1:
		return 72*bitrate/rate + pad
	default:
		return 144*bitrate/rate + pad
	}
}

// isMP3Stream accepts an MPEG audio frame header at the start of head, and
// when head reaches the next frame, a second header there too: one header
// alone is too easily found in random bytes.
func isMP3Stream(head []byte) bool {
	n := mp3FrameLen(head)
	if n == 0 {
		return false
	}
	if n+4 <= len(head) {
		return mp3FrameLen(head[n:]) != 0
	}
	return true
}

func adtsFrameLen(b []byte) int {
	if len(b) < 7 || b[0] != 0xFF || b[1]&0xF6 != 0xF0 {
		return 0
	}
	if (b[2]>>2)&0x0F > 12 { // sampling frequency index
		return 0
	}
	n := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
	if n < 7 {
		return 0
	}
	return n
}

func isADTSStream(head []byte) bool {
	n := adtsFrameLen(head)
	if n == 0 {
		return false
	}
	if n+7 <= len(head) {
		return adtsFrameLen(head[n:]) != 0
	}
	return true
}
