package http

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
)

// OpenAIError is the body of every error of the OpenAI-compatible API, in
// the shape OpenAI's API uses.
type OpenAIError struct {
	Error OpenAIErrorBody `json:"error"`
}

// OpenAIErrorBody is the inner object of OpenAIError.
type OpenAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// OpenAITranscription is the json response of /v1/audio/transcriptions.
type OpenAITranscription struct {
	Text string `json:"text"`
}

// OpenAIVerboseTranscription is the verbose_json response.
type OpenAIVerboseTranscription struct {
	Task     string           `json:"task"`
	Language string           `json:"language"`
	Duration float64          `json:"duration"`
	Text     string           `json:"text"`
	Segments []OpenAISegment  `json:"segments"`
	Words    []map[string]any `json:"words,omitempty"`
}

// OpenAISegment is one segment of a verbose_json response; the fields the
// engines do not produce are zero.
type OpenAISegment struct {
	ID               int     `json:"id"`
	Seek             int     `json:"seek"`
	Start            float64 `json:"start"`
	End              float64 `json:"end"`
	Text             string  `json:"text"`
	Tokens           []int   `json:"tokens"`
	Temperature      float64 `json:"temperature"`
	AvgLogprob       float64 `json:"avg_logprob"`
	CompressionRatio float64 `json:"compression_ratio"`
	NoSpeechProb     float64 `json:"no_speech_prob"`
}

// OpenAIModel is one entry of GET /v1/models.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// OpenAIModelList is the body of GET /v1/models.
type OpenAIModelList struct {
	Object string        `json:"object"`
	Data   []OpenAIModel `json:"data"`
}

// openAIFormats are the accepted response_format values.
var openAIFormats = map[string]bool{"json": true, "text": true, "srt": true, "vtt": true, "verbose_json": true}

// openAIFields are the small form fields of /v1/audio/transcriptions.
var openAIFields = []string{"model", "language", "prompt", "response_format", "temperature",
	"timestamp_granularities[]", "timestamp_granularities", "stream"}

// openAIError writes err in OpenAI's error shape with the status of its code;
// param names the offending form field, if any.
func (s *Server) openAIError(w http.ResponseWriter, r *http.Request, err error, param string) {
	code, msg := asr.ErrorCode(err), asr.ErrorMessage(err)
	if code == asr.EINTERNAL {
		s.logger().Error("http error", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	s.metrics.errors.WithLabelValues(code).Inc()
	status := ErrorStatusCode(code)
	typ := "invalid_request_error"
	switch {
	case status >= 500 || status == http.StatusRequestTimeout:
		typ = "server_error"
	case status == http.StatusUnauthorized:
		typ, code = "invalid_request_error", "invalid_api_key"
	}
	body := OpenAIError{Error: OpenAIErrorBody{Message: msg, Type: typ, Code: &code}}
	if param != "" {
		body.Error.Param = &param
	}
	writeJSON(w, status, &body)
}

func (s *Server) handleOpenAINotFound(w http.ResponseWriter, r *http.Request) {
	s.openAIError(w, r, asr.Errorf(asr.ENOTFOUND, "No endpoint %s %s: this server offers POST /v1/audio/transcriptions and GET /v1/models.", r.Method, truncate(r.URL.Path, 200)), "")
}

// handleOpenAITranscriptions creates a normal transcription from an OpenAI
// request, waits for it through the event listener, and answers in the
// requested format.
func (s *Server) handleOpenAITranscriptions(w http.ResponseWriter, r *http.Request) {
	up, err := s.receiveUpload(w, r, "file", openAIFields)
	defer up.discard()
	if err != nil {
		param := ""
		if asr.ErrorCode(err) != asr.EINVALID || strings.Contains(asr.ErrorMessage(err), "file") {
			param = "file"
		}
		s.openAIError(w, r, err, param)
		return
	}
	format := up.field("response_format")
	if format == "" {
		format = "json"
	}
	if !openAIFormats[format] {
		s.openAIError(w, r, asr.Errorf(asr.EINVALID, "response_format must be one of json, text, srt, vtt, verbose_json."), "response_format")
		return
	}
	if st := up.field("stream"); st != "" && st != "false" {
		s.openAIError(w, r, asr.Errorf(asr.EINVALID, "Streaming transcriptions are not supported: leave stream unset."), "stream")
		return
	}
	for _, g := range append(up.fields["timestamp_granularities[]"], up.fields["timestamp_granularities"]...) {
		if g != "segment" && g != "word" {
			s.openAIError(w, r, asr.Errorf(asr.EINVALID, "timestamp_granularities must be segment or word."), "timestamp_granularities")
			return
		}
	}
	if t := up.field("temperature"); t != "" {
		if f, err := strconv.ParseFloat(t, 64); err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			s.openAIError(w, r, asr.Errorf(asr.EINVALID, "temperature must be a number between 0 and 1."), "temperature")
			return
		}
	}
	lang := up.field("language")
	create, err := parseSubmitFields(lang, up.field("prompt"), "")
	if err != nil {
		s.openAIError(w, r, err, "language")
		return
	}
	if s.EventService == nil {
		s.openAIError(w, r, asr.Errorf(asr.EUNAVAILABLE, "Events are not available."), "")
		return
	}
	// Subscribe before the task exists, so its completion cannot be missed.
	sub := s.EventService.Subscribe()
	defer sub.Close()
	_, _, err = s.createTask(r.Context(), up, create)
	if err != nil {
		s.openAIError(w, r, err, "file")
		return
	}
	task, err := s.awaitTask(r.Context(), sub, create.ID)
	if err != nil {
		s.openAIError(w, r, err, "")
		return
	}
	switch task.Status {
	case asr.StatusFailed:
		msg := task.Error
		if msg == "" {
			msg = "The transcription failed."
		}
		s.openAIError(w, r, asr.Errorf(asr.ECORRUPTAUDIO, "%s", msg), "file")
		return
	case asr.StatusCanceled:
		s.openAIError(w, r, asr.Errorf(asr.ECONFLICT, "The transcription %s was canceled.", task.ID), "")
		return
	}
	w.Header().Set("X-ASR-Task-ID", task.ID.String())
	switch format {
	case "json":
		writeJSON(w, http.StatusOK, &OpenAITranscription{Text: strings.TrimSpace(task.Text)})
	case "verbose_json":
		writeJSON(w, http.StatusOK, newOpenAIVerbose(task))
	case "text":
		writePlain(w, FormatTXT(task))
	case "srt":
		writePlain(w, FormatSRT(task))
	case "vtt":
		writePlain(w, FormatVTT(task))
	}
}

func writePlain(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(body))
}

// awaitTask waits for task id to reach a final status, woken by its events.
// The task is also read every openAIRecheck, in case the listener dropped an
// event or reconnected. Returns EUNAVAILABLE after OpenAITimeout, leaving
// the task to run, and ETIMEOUT when the client goes away.
func (s *Server) awaitTask(ctx context.Context, sub asr.Subscription, id uuid.UUID) (*asr.Task, error) {
	timeout := s.OpenAITimeout
	if timeout <= 0 {
		timeout = 600 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(openAIRecheck)
	defer recheck.Stop()
	for {
		check := false
		select {
		case <-ctx.Done():
			return nil, asr.Errorf(asr.ETIMEOUT, "The request ended before the transcription.")
		case <-s.shutdown:
			return nil, asr.Errorf(asr.EUNAVAILABLE, "The gateway is shutting down; task %s goes on.", id)
		case <-deadline.C:
			return nil, asr.Errorf(asr.EUNAVAILABLE, "The transcription did not finish within %s; it goes on as task %s.", timeout, id)
		case <-recheck.C:
			check = true
		case ev, ok := <-sub.C():
			if !ok {
				return nil, asr.Errorf(asr.EUNAVAILABLE, "The event listener stopped; task %s goes on.", id)
			}
			if ev.TaskID != id.String() {
				continue
			}
			var p struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal(ev.Payload, &p)
			check = isFinal(p.Status)
		}
		if !check {
			continue
		}
		t, err := s.TaskService.FindTaskByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if isFinal(t.Status) {
			return t, nil
		}
	}
}

// openAIRecheck is how often a waiting transcription is read regardless of
// events: a safety net for events dropped by a slow subscriber.
const openAIRecheck = 10 * time.Second

func isFinal(status string) bool {
	return status == asr.StatusDone || status == asr.StatusFailed || status == asr.StatusCanceled
}

func newOpenAIVerbose(t *asr.Task) *OpenAIVerboseTranscription {
	v := &OpenAIVerboseTranscription{Task: "transcribe", Language: openAILanguage(t.Language), Text: strings.TrimSpace(t.Text),
		Segments: []OpenAISegment{}}
	if t.DurationS != nil {
		v.Duration = *t.DurationS
	}
	for i, sg := range cues(t) {
		v.Segments = append(v.Segments, OpenAISegment{
			ID: i, Seek: int(math.Round(sg.StartS * 100)), Start: sg.StartS, End: sg.EndS, Text: sg.Text, Tokens: []int{},
		})
	}
	return v
}

// openAILanguages maps ISO codes to the English names OpenAI's verbose_json uses.
var openAILanguages = map[string]string{
	"en": "english", "zh": "chinese", "yue": "cantonese", "ja": "japanese", "ko": "korean", "de": "german",
	"fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese", "ru": "russian", "ar": "arabic",
	"nl": "dutch", "hi": "hindi", "tr": "turkish", "pl": "polish", "sv": "swedish", "vi": "vietnamese",
}

func openAILanguage(code string) string {
	if n, ok := openAILanguages[strings.ToLower(code)]; ok {
		return n
	}
	return code
}

// handleOpenAIModels lists the models of the active workers, plus the alias
// whisper-1 that OpenAI clients default to.
func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) {
	workers, err := s.WorkerService.FindWorkers(r.Context(), s.WorkerTimeout)
	if err != nil {
		s.openAIError(w, r, err, "")
		return
	}
	seen := map[string]bool{}
	list := &OpenAIModelList{Object: "list", Data: []OpenAIModel{}}
	add := func(id, owner string, created time.Time) {
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		list.Data = append(list.Data, OpenAIModel{ID: id, Object: "model", Created: created.Unix(), OwnedBy: owner})
	}
	for _, wk := range workers {
		if !wk.Active {
			continue
		}
		for _, m := range workerModelNames(wk.Models) {
			add(m, wk.Engine, wk.StartedAt)
		}
	}
	sort.Slice(list.Data, func(i, j int) bool { return list.Data[i].ID < list.Data[j].ID })
	list.Data = append([]OpenAIModel{{ID: "whisper-1", Object: "model", Created: 0, OwnedBy: "lanasr"}}, list.Data...)
	writeJSON(w, http.StatusOK, list)
}

// workerModelNames extracts the speech-recognition model names from a
// worker's models document: the values of "asr", "streaming", "model" and
// "name" in an object ({"asr": "paraformer-zh", "vad": …}), or the strings of
// a list.
func workerModelNames(raw json.RawMessage) []string {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) == nil {
		var out []string
		for _, k := range []string{"asr", "streaming", "model", "name"} {
			if v, ok := obj[k].(string); ok && v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	var list []string
	_ = json.Unmarshal(raw, &list)
	return list
}
