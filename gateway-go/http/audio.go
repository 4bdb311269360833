package http

import (
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"

	asr "github.com/lanasr/lanasr/gateway-go"
)

func (s *Server) handleAudio(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskFromPath(w, r)
	if !ok {
		return
	}
	task, err := s.TaskService.FindTaskByID(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if task.AudioKey == "" {
		s.Error(w, r, asr.Errorf(asr.ENOTFOUND, "Task %s has no stored audio.", id))
		return
	}
	f, err := s.AudioStore.Open(task.AudioKey)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	defer f.Close()

	ct := task.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(path.Ext(task.AudioKey))
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%d-%d"`, id, f.Size(), f.ModTime().UnixNano()))
	w.Header().Set("Cache-Control", "private, max-age=0, must-revalidate")
	w.Header().Set("Content-Disposition", contentDisposition("inline", task.Filename, id.String()+path.Ext(task.AudioKey)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, path.Base(task.AudioKey), f.ModTime(), f)
}

// contentDisposition formats a Content-Disposition header whose filename is
// name (any Unicode, quoted per RFC 6266/5987), or fallback when name is empty.
func contentDisposition(kind, name, fallback string) string {
	if name == "" {
		name = fallback
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '/' {
			return '_'
		}
		return r
	}, name)
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	return mime.FormatMediaType(kind, map[string]string{"filename": fallback})
}
