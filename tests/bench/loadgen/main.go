// Command loadgen measures the gateway's submit latency: N clients each upload the same file
// to POST /api/v1/asr/submit, and it prints one JSON line of latency percentiles (ms).
//
// A Go client keeps the measurement about the server: Python's own overhead at 32 concurrent
// uploads would be of the same order as the figure being measured.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "gateway base URL")
	file := flag.String("file", "", "audio file to upload")
	clients := flag.Int("clients", 1, "concurrent clients")
	perClient := flag.Int("n", 20, "uploads per client")
	warmup := flag.Int("warmup", 3, "uploads per client before measuring")
	flag.Parse()

	data, err := os.ReadFile(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("audio", "bench.wav")
	fw.Write(data)
	mw.Close()
	payload, ctype := body.Bytes(), mw.FormDataContentType()

	transport := &http.Transport{MaxIdleConnsPerHost: *clients * 2, DisableCompression: true}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	submit := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Post(*url+"/api/v1/asr/submit", ctype, bytes.NewReader(payload))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}

	var (
		mu        sync.Mutex
		latencies []float64
		errors    int
		wg        sync.WaitGroup
		gate      sync.WaitGroup
	)
	gate.Add(*clients)
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < *warmup; i++ {
				submit()
			}
			gate.Done()
			gate.Wait() // every client measures at the same time
			for i := 0; i < *perClient; i++ {
				d, err := submit()
				mu.Lock()
				if err != nil {
					errors++
				} else {
					latencies = append(latencies, float64(d.Microseconds())/1000)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p*float64(len(latencies))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"clients": *clients, "n": len(latencies), "errors": errors,
		"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0),
	})
}
