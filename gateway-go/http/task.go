package http

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
)

// maxFieldBytes bounds each non-file form field.
const maxFieldBytes = 4096

// maxFields bounds the number of small form fields kept.
const maxFields = 32

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
	up, err := s.receiveUpload(w, r, "audio", []string{"language", "hotwords", "priority"})
	defer up.discard()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	create, err := parseSubmitFields(up.field("language"), up.field("hotwords"), up.field("priority"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	format, receipt, err := s.createTask(r.Context(), up, create)
	if err != nil {
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

// upload is a received multipart upload: the staged audio, its client's file
// name (sanitised, for display only) and the small fields.
type upload struct {
	staged   asr.StagedAudio
	filename string
	fields   map[string][]string
}

// field returns the last value of a small field, "" when absent.
func (u *upload) field(name string) string {
	if v := u.fields[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// discard removes the staged file unless it was committed; nil-safe.
func (u *upload) discard() {
	if u != nil && u.staged != nil {
		_ = u.staged.Discard()
	}
}

// idleReader cuts an upload off when no byte arrives for idle: each Read
// pushes the connection's read deadline forward, and a read that hits it
// returns ETIMEOUT.
type idleReader struct {
	r       io.Reader
	rc      *http.ResponseController
	idle    time.Duration
	stalled bool
}

func (ir *idleReader) Read(p []byte) (int, error) {
	_ = ir.rc.SetReadDeadline(time.Now().Add(ir.idle))
	n, err := ir.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		ir.stalled = true
		return n, asr.Errorf(asr.ETIMEOUT, "The upload stalled: no data for %s.", ir.idle)
	}
	return n, err
}

// receiveUpload reads a multipart body: the file part (fileField, or either
// "audio" or "file") is staged in the audio store, the named small fields are
// kept, other parts are discarded. The body is bounded by MaxUploadBytes and
// cut off after UploadIdleTimeout without data. The caller discards the
// returned upload, which is non-nil even with an error. Returns EINVALID,
// ETOOLARGE, ETIMEOUT or EUNAVAILABLE.
func (s *Server) receiveUpload(w http.ResponseWriter, r *http.Request, fileField string, names []string) (*upload, error) {
	up := &upload{fields: map[string][]string{}}
	if r.ContentLength > s.MaxUploadBytes+multipartSlack {
		return up, asr.Errorf(asr.ETOOLARGE, "The upload is larger than the limit of %d MiB.", max(s.MaxUploadBytes>>20, 1))
	}
	body := r.Body
	if s.UploadIdleTimeout > 0 {
		rc := http.NewResponseController(w)
		ir := &idleReader{r: r.Body, rc: rc, idle: s.UploadIdleTimeout}
		body = struct {
			io.Reader
			io.Closer
		}{ir, r.Body}
		// The deadline must not outlive the body: the server's background
		// read would otherwise cancel the request's context. After a stall
		// it stays in the past, so that the server does not wait for the
		// rest of the body before answering.
		defer func() {
			if ir.stalled {
				_ = rc.SetReadDeadline(time.Unix(1, 0))
			} else {
				_ = rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	r.Body = http.MaxBytesReader(w, body, s.MaxUploadBytes+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return up, asr.Errorf(asr.EINVALID, "Expected a multipart/form-data body with a %q field.", fileField)
	}
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	nfields := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			return up, bodyError(err)
		}
		name := part.FormName()
		switch {
		case name == "audio" || name == "file":
			if up.staged != nil {
				part.Close()
				return up, asr.Errorf(asr.EINVALID, "Send exactly one audio file.")
			}
			up.filename = cleanFilename(part.FileName())
			up.staged, err = s.AudioStore.Stage(r.Context(), part, s.MaxUploadBytes)
			if err != nil {
				part.Close()
				return up, bodyError(err)
			}
		case wanted[name]:
			if nfields++; nfields > maxFields {
				part.Close()
				return up, asr.Errorf(asr.EINVALID, "The form has more than %d fields.", maxFields)
			}
			v, err := readField(part)
			if err != nil {
				part.Close()
				return up, err
			}
			up.fields[name] = append(up.fields[name], v)
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				part.Close()
				return up, bodyError(err)
			}
		}
		part.Close()
	}
	if up.staged == nil {
		return up, asr.Errorf(asr.EINVALID, "The form has no %s field.", fileField)
	}
	return up, nil
}

// createTask validates the staged audio, moves it to its key and creates the
// task and its job in one transaction. Returns the errors of CheckAudio and
// TaskService.CreateTask.
func (s *Server) createTask(ctx context.Context, up *upload, create *asr.TaskCreate) (asr.AudioFormat, *asr.SubmitReceipt, error) {
	if s.CheckAudio == nil {
		return asr.AudioFormat{}, nil, errors.New("http: Server.CheckAudio is not set")
	}
	staged := up.staged
	format, err := s.CheckAudio(staged, staged.Size())
	if err != nil {
		return format, nil, err
	}
	create.ID = uuid.New()
	create.Filename = up.filename
	if create.Filename == "" {
		create.Filename = "audio." + format.Ext
	}
	create.AudioKey = asr.AudioKey(create.ID, format.Ext, time.Now())
	create.AudioSize = staged.Size()
	create.ContentType = format.ContentType
	if err := staged.Commit(create.AudioKey); err != nil {
		return format, nil, err
	}
	receipt, err := s.TaskService.CreateTask(ctx, create)
	if err != nil {
		_ = s.AudioStore.Delete(create.AudioKey)
		return format, nil, err
	}
	s.metrics.uploads.Inc()
	s.metrics.uploadBytes.Add(float64(create.AudioSize))
	return format, receipt, nil
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

// validText reports whether s is valid UTF-8 without NUL, which PostgreSQL
// text columns refuse.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func readField(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return "", bodyError(err)
	} else if len(b) > maxFieldBytes {
		return "", asr.Errorf(asr.EINVALID, "Field %q is longer than %d bytes.", part.FormName(), maxFieldBytes)
	} else if !validText(string(b)) {
		return "", asr.Errorf(asr.EINVALID, "Field %q is not valid UTF-8 text.", part.FormName())
	}
	return strings.TrimSpace(string(b)), nil
}

func parseSubmitFields(lang, hotwords, priority string) (*asr.TaskCreate, error) {
	c := &asr.TaskCreate{}
	switch {
	case lang == "" || strings.EqualFold(lang, "auto"):
	case languageRE.MatchString(lang):
		c.LanguageRequested = strings.ToLower(lang)
	default:
		return nil, asr.Errorf(asr.EINVALID, "Language must be \"auto\" or an ISO code such as \"zh\" or \"en\".")
	}
	c.Hotwords = hotwords
	if p := priority; p != "" {
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
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar {
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
	if !validText(f.Query) {
		s.Error(w, r, asr.Errorf(asr.EINVALID, "The search text is not valid UTF-8 text."))
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
