package http

import (
	"math"
	"time"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// RecordJSON is a task as history lists it: a result without segments.
type RecordJSON struct {
	TaskID            string     `json:"task_id"`
	Kind              string     `json:"kind"`
	Status            string     `json:"status"`
	Progress          float64    `json:"progress"`
	Text              string     `json:"text"`
	Duration          *float64   `json:"duration"`
	Language          *string    `json:"language"`
	LanguageRequested *string    `json:"language_requested"`
	Hotwords          string     `json:"hotwords"`
	Model             *string    `json:"model"`
	Engine            *string    `json:"engine"`
	Worker            *string    `json:"worker"`
	RTF               *float64   `json:"rtf"`
	Filename          string     `json:"filename"`
	AudioSize         int64      `json:"audio_size"`
	Priority          int        `json:"priority"`
	Attempts          int        `json:"attempts"`
	CreatedAt         time.Time  `json:"created_at"`
	StartedAt         *time.Time `json:"started_at"`
	FinishedAt        *time.Time `json:"finished_at"`
	AudioURL          *string    `json:"audio_url"`
	Error             *string    `json:"error"`
	Position          *int       `json:"position"`
}

// SegmentJSON is one timed sentence, in seconds.
type SegmentJSON struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Text  string  `json:"text"`
}

// ResultJSON is the body of GET /api/v1/asr/result/{id}.
type ResultJSON struct {
	RecordJSON
	Segments []SegmentJSON `json:"segments"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func newRecordJSON(t *asr.Task) *RecordJSON {
	rec := &RecordJSON{
		TaskID:            t.ID.String(),
		Kind:              t.Kind,
		Status:            t.Status,
		Progress:          math.Round(t.Progress*1e4) / 1e4,
		Text:              t.Text,
		Duration:          t.DurationS,
		Language:          strPtr(t.Language),
		LanguageRequested: strPtr(t.LanguageRequested),
		Hotwords:          t.Hotwords,
		Model:             strPtr(t.Model),
		Engine:            strPtr(t.Engine),
		Worker:            strPtr(t.Worker),
		RTF:               t.RTF,
		Filename:          t.Filename,
		AudioSize:         t.AudioSize,
		Priority:          t.Priority,
		Attempts:          t.Attempts,
		CreatedAt:         t.CreatedAt.UTC(),
		StartedAt:         utcPtr(t.StartedAt),
		FinishedAt:        utcPtr(t.FinishedAt),
		Error:             strPtr(t.Error),
	}
	if t.AudioKey != "" {
		u := "/api/v1/asr/audio/" + t.ID.String()
		rec.AudioURL = &u
	}
	if t.Status == asr.StatusQueued && t.Position > 0 {
		p := t.Position
		rec.Position = &p
	}
	return rec
}

func newResultJSON(t *asr.Task) *ResultJSON {
	res := &ResultJSON{RecordJSON: *newRecordJSON(t), Segments: make([]SegmentJSON, 0, len(t.Segments))}
	for _, sg := range t.Segments {
		res.Segments = append(res.Segments, SegmentJSON{Start: sg.StartS, End: sg.EndS, Text: sg.Text})
	}
	return res
}
