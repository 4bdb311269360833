package http

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	asr "github.com/lanasr/lanasr/gateway-go"
)

// exportTypes maps each export extension to its Content-Type.
var exportTypes = map[string]string{
	"txt":  "text/plain; charset=utf-8",
	"srt":  "application/x-subrip; charset=utf-8",
	"vtt":  "text/vtt; charset=utf-8",
	"json": "application/json; charset=utf-8",
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	i := strings.LastIndexByte(file, '.')
	if i < 0 {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "Export path must be {task_id}.{txt,srt,vtt,json}."))
		return
	}
	rawID, ext := file[:i], strings.ToLower(file[i+1:])
	ct, ok := exportTypes[ext]
	if !ok {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "Unknown export format %q: use txt, srt, vtt or json.", ext))
		return
	}
	id, err := asr.ParseTaskID(rawID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	task, err := s.TaskService.FindTaskByID(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if ext != "json" && task.Status != asr.StatusDone {
		s.Error(w, r, asr.Errorf(asr.ECONFLICT, "Task %s is %s: there is no transcript to export yet.", id, task.Status))
		return
	}

	base := strings.TrimSuffix(task.Filename, path.Ext(task.Filename))
	if base == "" {
		base = id.String()
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", contentDisposition("attachment", base+"."+ext, id.String()+"."+ext))
	w.Header().Set("Cache-Control", "no-store")
	switch ext {
	case "json":
		writeJSON(w, http.StatusOK, newResultJSON(task))
	case "txt":
		_, _ = w.Write([]byte(FormatTXT(task)))
	case "srt":
		_, _ = w.Write([]byte(FormatSRT(task)))
	case "vtt":
		_, _ = w.Write([]byte(FormatVTT(task)))
	}
}

// cues returns a task's segments, or one segment spanning its duration when
// the worker wrote text but no segments.
func cues(t *asr.Task) []*asr.Segment {
	if len(t.Segments) > 0 {
		return t.Segments
	}
	if strings.TrimSpace(t.Text) == "" {
		return nil
	}
	end := 0.0
	if t.DurationS != nil {
		end = *t.DurationS
	}
	return []*asr.Segment{{StartS: 0, EndS: end, Text: t.Text}}
}

// FormatTXT returns the task's text, or its segments one per line.
func FormatTXT(t *asr.Task) string {
	text := strings.TrimSpace(t.Text)
	if text == "" {
		lines := make([]string, 0, len(t.Segments))
		for _, sg := range t.Segments {
			lines = append(lines, strings.TrimSpace(sg.Text))
		}
		text = strings.Join(lines, "\n")
	}
	if text == "" {
		return ""
	}
	return text + "\n"
}

// FormatSRT returns the task's segments as SubRip subtitles.
func FormatSRT(t *asr.Task) string {
	var b strings.Builder
	for i, c := range cues(t) {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, Timestamp(c.StartS, ','), Timestamp(c.EndS, ','), cueText(c.Text))
	}
	return b.String()
}

// FormatVTT returns the task's segments as WebVTT subtitles.
func FormatVTT(t *asr.Task) string {
	var b strings.Builder
	b.WriteString("WEBVTT\n\n")
	for _, c := range cues(t) {
		fmt.Fprintf(&b, "%s --> %s\n%s\n\n", Timestamp(c.StartS, '.'), Timestamp(c.EndS, '.'), cueText(c.Text))
	}
	return b.String()
}

// cueText keeps a cue's text from ending the cue early: blank lines and the
// "-->" arrow are not allowed inside one.
func cueText(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\r", "")
	for strings.Contains(s, "\n\n") {
		s = strings.ReplaceAll(s, "\n\n", "\n")
	}
	return strings.ReplaceAll(s, "-->", "->")
}

// Timestamp formats seconds as HH:MM:SS followed by sep and milliseconds:
// sep ',' for SRT (00:00:01,234), '.' for WebVTT (00:00:01.234).
func Timestamp(seconds float64, sep byte) string {
	if seconds < 0 {
		seconds = 0
	}
	ms := int64(seconds*1000 + 0.5)
	h, ms := ms/3_600_000, ms%3_600_000
	m, ms := ms/60_000, ms%60_000
	sec, ms := ms/1000, ms%1000
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", h, m, sec, sep, ms)
}
