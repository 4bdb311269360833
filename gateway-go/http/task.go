package http

import (
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
)

// maxFieldBytes bounds each non-file form field.
const maxFieldBytes = 4096

// multipartSlack is what the body may hold beyond the audio itself: headers,
// boundaries and the small fields.
const multipartSlack = 1 << 20

var languageRE = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$`)

// SubmitResponse is the body of a 202 from POST /api/v1/asr/submit.
type SubmitResponse struct {
	TaskID        string  `json:"task_id"`
	Status        string  `json:"status"`
	Position      int     `json:"position"`
	EstimatedWait float64 `json:"estimated_wait"`
	Filename      string  `json:"filename"`
	Format        string  `json:"format"`
	Size          int64   `json:"size"`
	ResultURL     string  `json:"result_url"`
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.ContentLength > s.MaxUploadBytes+multipartSlack {
		s.Error(w, r, asr.Errorf(asr.ETOOLARGE, "The upload is larger than the limit of %d MiB.", max(s.MaxUploadBytes>>20, 1)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxUploadBytes+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "Expected a multipart/form-data body with an audio field."))
		return
	}

	var (
		staged   asr.StagedAudio
		filename string
		fields   = map[string]string{}
	)
	defer func() {
		if staged != nil {
			_ = staged.Discard()
		}
	}()

	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			s.Error(w, r, bodyError(err))
			return
		}
		switch name := part.FormName(); name {
		case "audio", "file":
			if staged != nil {
				part.Close()
				s.Error(w, r, asr.Errorf(asr.EINVALID, "Send exactly one audio file."))
				return
			}
			filename = cleanFilename(part.FileName())
			staged, err = s.AudioStore.Stage(ctx, part, s.MaxUploadBytes)
			if err != nil {
				part.Close()
				s.Error(w, r, bodyError(err))
				return
			}
		case "language", "hotwords", "priority":
			v, err := readField(part)
			if err != nil {
				part.Close()
				s.Error(w, r, err)
				return
			}
			fields[name] = v
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				part.Close()
				s.Error(w, r, bodyError(err))
				return
			}
		}
		part.Close()
	}
	if staged == nil {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "The form has no audio field."))
		return
	}

	create, err := parseSubmitFields(fields)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if s.CheckAudio == nil {
		s.Error(w, r, errors.New("http: Server.CheckAudio is not set"))
		return
	}
	format, err := s.CheckAudio(staged, staged.Size())
	if err != nil {
		s.Error(w, r, err)
		return
	}

	create.ID = uuid.New()
	create.Filename = filename
	if create.Filename == "" {
		create.Filename = "audio." + format.Ext
	}
	create.AudioKey = asr.AudioKey(create.ID, format.Ext, time.Now())
	create.AudioSize = staged.Size()
	create.ContentType = format.ContentType
	if err := staged.Commit(create.AudioKey); err != nil {
		s.Error(w, r, err)
		return
	}
	receipt, err := s.TaskService.CreateTask(ctx, create)
	if err != nil {
		_ = s.AudioStore.Delete(create.AudioKey)
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/asr/result/"+create.ID.String())
	writeJSON(w, http.StatusAccepted, &SubmitResponse{
		TaskID:        create.ID.String(),
		Status:        receipt.Task.Status,
		Position:      receipt.Position,
		EstimatedWait: receipt.EstimatedWait,
		Filename:      create.Filename,
		Format:        format.Name,
		Size:          create.AudioSize,
		ResultURL:     "/api/v1/asr/result/" + create.ID.String(),
	})
}

// bodyError classifies a failure to read the request body.
func bodyError(err error) error {
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return asr.Errorf(asr.ETOOLARGE, "The upload is larger than the limit of %d MiB.", max((maxErr.Limit-multipartSlack)>>20, 1))
	case asr.ErrorCode(err) != asr.EINTERNAL:
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return asr.Errorf(asr.EINVALID, "The upload ended early.")
	}
	return asr.Errorf(asr.EINVALID, "The upload could not be read: malformed multipart body.")
}

func readField(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return "", bodyError(err)
	} else if len(b) > maxFieldBytes {
		return "", asr.Errorf(asr.EINVALID, "Field %q is longer than %d bytes.", part.FormName(), maxFieldBytes)
	}
	return strings.TrimSpace(string(b)), nil
}

func parseSubmitFields(fields map[string]string) (*asr.TaskCreate, error) {
	c := &asr.TaskCreate{}
	switch lang := fields["language"]; {
	case lang == "" || strings.EqualFold(lang, "auto"):
	case languageRE.MatchString(lang):
		c.LanguageRequested = strings.ToLower(lang)
	default:
		return nil, asr.Errorf(asr.EINVALID, "Language must be \"auto\" or an ISO code such as \"zh\" or \"en\".")
	}
	c.Hotwords = fields["hotwords"]
	if p := fields["priority"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < asr.PriorityMin || n > asr.PriorityMax {
			return nil, asr.Errorf(asr.EINVALID, "Priority must be an integer between %d and %d.", asr.PriorityMin, asr.PriorityMax)
		}
		c.Priority = n
	}
	return c, nil
}

// cleanFilename keeps the last element of a client's file name, for display
// only: it never becomes a path.
func cleanFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	if r := []rune(name); len(r) > 200 {
		name = string(r[:200])
	}
	return name
}

func (s *Server) taskFromPath(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	id, err := asr.ParseTaskID(r.PathValue("id"))
	if err != nil {
		s.Error(w, r, err)
		return uuid.Nil, false
	}
	return id, true
}

func (s *Server) handleResult(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskFromPath(w, r)
	if !ok {
		return
	}
	task, err := s.TaskService.FindTaskByID(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newResultJSON(task))
}

// HistoryResponse is the body of GET /api/v1/asr/history.
type HistoryResponse struct {
	Total   int           `json:"total"`
	Limit   int           `json:"limit"`
	Offset  int           `json:"offset"`
	Records []*RecordJSON `json:"records"`
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	f := asr.TaskFilter{Limit: 20, Query: strings.TrimSpace(v.Get("q")), Status: v.Get("status"), Kind: v.Get("kind")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 200 {
			s.Error(w, r, asr.Errorf(asr.EINVALID, "Limit must be an integer between 1 and 200."))
			return
		}
		f.Limit = n
	}
	if o := v.Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 {
			s.Error(w, r, asr.Errorf(asr.EINVALID, "Offset must be a non-negative integer."))
			return
		}
		f.Offset = n
	}
	switch f.Status {
	case "", asr.StatusQueued, asr.StatusProcessing, asr.StatusDone, asr.StatusFailed, asr.StatusCanceled:
	default:
		s.Error(w, r, asr.Errorf(asr.EINVALID, "Unknown status %q.", f.Status))
		return
	}
	switch f.Kind {
	case "", asr.KindFile, asr.KindLive:
	default:
		s.Error(w, r, asr.Errorf(asr.EINVALID, "Unknown kind %q.", f.Kind))
		return
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if raw := v.Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				s.Error(w, r, asr.Errorf(asr.EINVALID, "%s must be an RFC 3339 time such as 2026-11-22T00:00:00+08:00.", name))
				return
			}
			*dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "to must be later than from."))
		return
	}
	if len([]rune(f.Query)) > 200 {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "The search text is longer than 200 characters."))
		return
	}
	tasks, total, err := s.TaskService.FindTasks(r.Context(), f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	resp := &HistoryResponse{Total: total, Limit: f.Limit, Offset: f.Offset, Records: make([]*RecordJSON, 0, len(tasks))}
	for _, t := range tasks {
		resp.Records = append(resp.Records, newRecordJSON(t))
	}
	writeJSON(w, http.StatusOK, resp)
}

// TaskStatusResponse answers retry and cancel.
type TaskStatusResponse struct {
	TaskID   string `json:"task_id"`
	Status   string `json:"status"`
	Position *int   `json:"position,omitempty"`
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskFromPath(w, r)
	if !ok {
		return
	}
	task, err := s.TaskService.RetryTask(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	pos := task.Position
	writeJSON(w, http.StatusAccepted, &TaskStatusResponse{TaskID: task.ID.String(), Status: task.Status, Position: &pos})
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskFromPath(w, r)
	if !ok {
		return
	}
	task, err := s.TaskService.CancelTask(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &TaskStatusResponse{TaskID: task.ID.String(), Status: task.Status})
}

// DeleteResponse answers DELETE /api/v1/asr/task/{id}.
type DeleteResponse struct {
	TaskID  string `json:"task_id"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskFromPath(w, r)
	if !ok {
		return
	}
	task, err := s.TaskService.DeleteTask(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if task.AudioKey != "" {
		if err := s.AudioStore.Delete(task.AudioKey); err != nil {
			s.logger().Warn("audio file not removed", "task_id", id, "key", task.AudioKey, "error", err)
		}
	}
	writeJSON(w, http.StatusOK, &DeleteResponse{TaskID: id.String(), Deleted: true})
}

// QueueStatusResponse is the body of GET /api/v1/asr/queue/status.
type QueueStatusResponse struct {
	Queued      int `json:"queued"`
	Processing  int `json:"processing"`
	Done        int `json:"done"`
	Failed      int `json:"failed"`
	Canceled    int `json:"canceled"`
	Workers     int `json:"workers"`
	WorkersBusy int `json:"workers_busy"`
	Live        int `json:"live"`
}

func (s *Server) handleQueueStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.TaskService.QueueStatus(r.Context(), s.WorkerTimeout)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &QueueStatusResponse{
		Queued: st.Queued, Processing: st.Processing, Done: st.Done, Failed: st.Failed,
		Canceled: st.Canceled, Workers: st.Workers, WorkersBusy: st.WorkersBusy, Live: st.Live,
	})
}
