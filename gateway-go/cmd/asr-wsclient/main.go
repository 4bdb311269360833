// Command asr-wsclient is a FunASR-protocol WebSocket client for tests and
// benchmarks of the gateway's live captions.
//
// Stream mode (default) sends a WAV (mono PCM16, 16 or 8 kHz) or raw PCM file
// the way FunASR's Python client does: the JSON configuration, then frames
// of stride = 60 * chunk_size[1] / chunk_interval / 1000 * audio_fs * 2 bytes
// every 60 * chunk_size[1] / chunk_interval ms (divided by -speed), then
// {"is_speaking": false}. Each message received is printed as one JSON line:
//
//	{"recv_unix": 1763800000.123, "elapsed_ms": 812.4, "audio_sent_ms": 600, "msg": {...}}
//
// It exits after a message with is_final true, an error message, the socket
// closing, or -timeout after the end of the audio.
//
// Idle mode (-idle N) opens N connections, sends each the configuration and
// no audio, holds them for -hold, and prints a JSON summary: for the gateway's
// memory per idle socket. The gateway ends a session whose client sends
// nothing for ASR_WS_IDLE_S; -keepalive sends an empty binary frame that often.
//
//	asr-wsclient -url ws://127.0.0.1:8080/ -speed 1 testdata/jfk_en.wav
//	asr-wsclient -url ws://127.0.0.1:8080/ -idle 1000 -hold 60s -keepalive 20s
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "asr-wsclient: %v\n", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	URL           string
	Mode          string
	ChunkSize     []int
	ChunkInterval int
	Speed         float64
	AudioFS       int
	WavName       string
	Hotwords      string
	ITN           bool
	Timeout       time.Duration
	Idle          int
	Hold          time.Duration
	Keepalive     time.Duration
	DialRate      int
	File          string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("asr-wsclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var chunk string
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:8080/", "gateway WebSocket URL (/ or /api/v1/asr/stream)")
	fs.StringVar(&o.Mode, "mode", "2pass", "online, offline or 2pass")
	fs.StringVar(&chunk, "chunk-size", "5,10,5", "FunASR chunk_size")
	fs.IntVar(&o.ChunkInterval, "chunk-interval", 10, "FunASR chunk_interval")
	fs.Float64Var(&o.Speed, "speed", 1, "send this many times faster than real time (0: as fast as possible)")
	fs.IntVar(&o.AudioFS, "audio-fs", 16000, "sample rate of a raw PCM file (a WAV header wins)")
	fs.StringVar(&o.WavName, "wav-name", "", "wav_name (default: the file's base name)")
	fs.StringVar(&o.Hotwords, "hotwords", "", "hotwords, sent verbatim")
	fs.BoolVar(&o.ITN, "itn", true, "itn")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "stream: wait this long for is_final after the audio")
	fs.IntVar(&o.Idle, "idle", 0, "idle mode: open this many connections, send the configuration only")
	fs.DurationVar(&o.Hold, "hold", 30*time.Second, "idle mode: hold the connections this long")
	fs.DurationVar(&o.Keepalive, "keepalive", 0, "idle mode: send an empty binary frame this often (0: never)")
	fs.IntVar(&o.DialRate, "dial-rate", 200, "idle mode: connections opened per second")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: asr-wsclient [flags] FILE.wav|FILE.pcm\n       asr-wsclient [flags] -idle N\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, p := range strings.Split(chunk, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("chunk-size: want three integers, got %q", chunk)
		}
		o.ChunkSize = append(o.ChunkSize, n)
	}
	if len(o.ChunkSize) != 3 || o.ChunkSize[1] < 1 || o.ChunkInterval < 1 {
		return nil, fmt.Errorf("chunk-size: want three integers with a positive middle one, got %q", chunk)
	}
	if o.Idle == 0 {
		if fs.NArg() != 1 {
			fs.Usage()
			return nil, errors.New("want one audio file")
		}
		o.File = fs.Arg(0)
	} else if fs.NArg() != 0 {
		return nil, errors.New("idle mode takes no file")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.Idle > 0 {
		return runIdle(ctx, o, stdout, stderr)
	}
	return runStream(ctx, o, stdout)
}

// config returns the first message, as FunASR's Python client sends it.
func (o *options) config(fs int, name string) []byte {
	b, _ := json.Marshal(map[string]any{
		"mode": o.Mode, "chunk_size": o.ChunkSize, "chunk_interval": o.ChunkInterval,
		"encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0, "audio_fs": fs,
		"wav_name": name, "wav_format": "pcm", "is_speaking": true, "hotwords": o.Hotwords, "itn": o.ITN,
	})
	return b
}

// Stride returns the bytes per frame and the real-time interval between
// frames, as FunASR's Python client computes them.
func Stride(chunkSize []int, chunkInterval, fs int) (int, time.Duration) {
	ms := 60 * float64(chunkSize[1]) / float64(chunkInterval)
	return int(ms / 1000 * float64(fs) * 2), time.Duration(ms * float64(time.Millisecond))
}

// readAudio returns the PCM16 samples of a WAV file (header parsed) or a raw
// file, and the sample rate.
func readAudio(path string, defFS int) ([]byte, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return b, defFS, nil
	}
	fs := 0
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > len(b) {
				return nil, 0, errors.New("malformed WAV fmt chunk")
			}
			ch, bits := binary.LittleEndian.Uint16(b[body+2:]), binary.LittleEndian.Uint16(b[body+14:])
			if ch != 1 || bits != 16 {
				return nil, 0, fmt.Errorf("want mono 16-bit PCM, got %d channels of %d bits", ch, bits)
			}
			fs = int(binary.LittleEndian.Uint32(b[body+4:]))
		case "data":
			end := min(body+size, len(b))
			if fs == 0 {
				return nil, 0, errors.New("WAV data before fmt")
			}
			return b[body:end], fs, nil
		}
		off = body + size + size%2
	}
	return nil, 0, errors.New("no data chunk in WAV file")
}

// Line is one printed message.
type Line struct {
	RecvUnix    float64         `json:"recv_unix"`
	ElapsedMS   float64         `json:"elapsed_ms"`
	AudioSentMS float64         `json:"audio_sent_ms"`
	Msg         json.RawMessage `json:"msg"`
}

func runStream(ctx context.Context, o *options, stdout io.Writer) error {
	pcm, fs, err := readAudio(o.File, o.AudioFS)
	if err != nil {
		return err
	}
	name := o.WavName
	if name == "" {
		name = strings.TrimSuffix(baseName(o.File), ".wav")
	}
	stride, interval := Stride(o.ChunkSize, o.ChunkInterval, fs)
	if o.Mode == "offline" {
		interval = time.Millisecond
	}
	if o.Speed > 0 {
		interval = time.Duration(float64(interval) / o.Speed)
	} else {
		interval = 0
	}

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, _, err := websocket.Dial(dctx, o.URL, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	cancel()
	if err != nil {
		return err
	}
	defer c.CloseNow() //nolint:errcheck
	c.SetReadLimit(16 << 20)

	start := time.Now()
	var sentBytes atomic.Int64
	sendErr := make(chan error, 1)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		sendErr <- func() error {
			if err := c.Write(ctx, websocket.MessageText, o.config(fs, name)); err != nil {
				return err
			}
			next := time.Now()
			for off := 0; off < len(pcm); off += stride {
				end := min(off+stride, len(pcm))
				if err := c.Write(ctx, websocket.MessageBinary, pcm[off:end]); err != nil {
					return err
				}
				sentBytes.Store(int64(end))
				if interval > 0 {
					next = next.Add(interval)
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Until(next)):
					}
				}
			}
			return c.Write(ctx, websocket.MessageText, []byte(`{"is_speaking": false}`))
		}()
	}()

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	var deadline <-chan time.Time
	msgs := make(chan []byte)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- b:
			case <-done:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-sendErr:
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			deadline = time.After(o.Timeout)
		case <-deadline:
			return fmt.Errorf("no final message within %s after the audio", o.Timeout)
		case err := <-readErr:
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		case b := <-msgs:
			now := time.Now()
			line := Line{
				RecvUnix:    float64(now.UnixNano()) / 1e9,
				ElapsedMS:   float64(now.Sub(start).Microseconds()) / 1000,
				AudioSentMS: float64(sentBytes.Load()) / float64(2*fs) * 1000,
				Msg:         json.RawMessage(b),
			}
			if !json.Valid(b) {
				line.Msg, _ = json.Marshal(string(b))
			}
			if err := enc.Encode(&line); err != nil {
				return err
			}
			var head struct {
				IsFinal bool   `json:"is_final"`
				Error   string `json:"error"`
				Code    string `json:"code"`
			}
			_ = json.Unmarshal(b, &head)
			if head.IsFinal {
				_ = c.Close(websocket.StatusNormalClosure, "")
				return nil
			}
			if head.Error != "" && head.Code != "worker_lost" {
				return fmt.Errorf("gateway error %s: %s", head.Code, head.Error)
			}
		}
	}
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// IdleSummary is the idle mode's report.
type IdleSummary struct {
	Requested int            `json:"requested"`
	Opened    int64          `json:"opened"`
	DialFail  int64          `json:"dial_failed"`
	Closed    int64          `json:"closed_early"`
	Messages  map[string]int `json:"messages_by_code"`
	HeldS     float64        `json:"held_s"`
}

func runIdle(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	var (
		opened, failed, closed atomic.Int64
		mu                     sync.Mutex
		codes                  = map[string]int{}
		wg                     sync.WaitGroup
	)
	holdCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(max(o.DialRate, 1)))
	defer tick.Stop()
	var dialErr error
	for i := 0; i < o.Idle; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		c, _, err := websocket.Dial(dctx, o.URL, &websocket.DialOptions{Subprotocols: []string{"binary"}})
		dcancel()
		if err != nil {
			failed.Add(1)
			dialErr = err
			continue
		}
		if err := c.Write(ctx, websocket.MessageText, o.config(16000, fmt.Sprintf("idle-%d", i))); err != nil {
			failed.Add(1)
			c.CloseNow() //nolint:errcheck
			continue
		}
		opened.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseNow() //nolint:errcheck
			if o.Keepalive > 0 {
				go func() {
					t := time.NewTicker(o.Keepalive)
					defer t.Stop()
					for {
						select {
						case <-holdCtx.Done():
							return
						case <-t.C:
							if c.Write(holdCtx, websocket.MessageBinary, nil) != nil {
								return
							}
						}
					}
				}()
			}
			for {
				_, b, err := c.Read(holdCtx)
				if err != nil {
					if holdCtx.Err() == nil {
						closed.Add(1)
					}
					return
				}
				var head struct {
					Code string `json:"code"`
				}
				_ = json.Unmarshal(b, &head)
				mu.Lock()
				codes[head.Code]++
				mu.Unlock()
			}
		}()
	}
	if dialErr != nil {
		fmt.Fprintf(stderr, "asr-wsclient: %d dials failed, last: %v\n", failed.Load(), dialErr)
	}
	fmt.Fprintf(stderr, "asr-wsclient: %d connections open; holding %s\n", opened.Load(), o.Hold)
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(o.Hold):
	}
	held := time.Since(start)
	closedEarly := closed.Load()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(stdout).Encode(&IdleSummary{
		Requested: o.Idle, Opened: opened.Load(), DialFail: failed.Load(), Closed: closedEarly,
		Messages: codes, HeldS: held.Seconds(),
	})
}
