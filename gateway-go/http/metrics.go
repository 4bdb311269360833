package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	asr "github.com/lanasr/lanasr/gateway-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeTimeout bounds the database queries of one scrape.
const scrapeTimeout = 2 * time.Second

// metrics holds the gateway's Prometheus collectors, on a registry of its own
// so that several servers in one test process do not collide.
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	durations       *prometheus.HistogramVec
	uploads         prometheus.Counter
	uploadBytes     prometheus.Counter
	errors          *prometheus.CounterVec
	captionLatency  prometheus.Histogram
	droppedPartials prometheus.Counter
	jobDuration     *prometheus.HistogramVec
	audioDuration   *prometheus.HistogramVec
	rtf             *prometheus.HistogramVec
	tasksFinished   *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asr_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "asr_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asr_uploads_total", Help: "Uploads accepted and queued (API and OpenAI-compatible endpoint).",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asr_upload_bytes_total", Help: "Bytes of audio accepted in uploads.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asr_errors_total", Help: "Errors answered to clients, by application error code.",
		}, []string{"code"}),
		captionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "asr_caption_forward_seconds", Help: "Time from a caption's NOTIFY receipt to its write on the live socket.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		droppedPartials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "asr_live_dropped_partials_total", Help: "Partial captions dropped for slow live clients.",
		}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "asr_job_duration_seconds", Help: "Wall time of finished file transcriptions, from start to finish, by engine.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}, []string{"engine"}),
		audioDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "asr_job_audio_seconds", Help: "Audio length of finished file transcriptions, by engine.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, []string{"engine"}),
		rtf: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "asr_job_real_time_factor", Help: "Real-time factor (processing time / audio time) of finished transcriptions, by engine.",
			Buckets: []float64{.01, .02, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 5},
		}, []string{"engine"}),
		tasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "asr_tasks_finished_total", Help: "Tasks seen reaching a final status by this gateway, by status.",
		}, []string{"status"}),
	}
	m.reg.MustRegister(m.requests, m.durations, m.uploads, m.uploadBytes, m.errors, m.captionLatency,
		m.droppedPartials, m.jobDuration, m.audioDuration, m.rtf, m.tasksFinished,
		&scrapeCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	queueDepthDesc = prometheus.NewDesc("asr_queue_depth", "Jobs waiting (Procrastinate status todo), by queue.", []string{"queue"}, nil)
	tasksDesc      = prometheus.NewDesc("asr_tasks", "Transcriptions in the database, by status.", []string{"status"}, nil)
	workersDesc    = prometheus.NewDesc("asr_workers_active", "Workers that heartbeated recently.", nil, nil)
	workersBusy    = prometheus.NewDesc("asr_workers_busy", "Active workers that are transcribing.", nil, nil)
	liveOpenDesc   = prometheus.NewDesc("asr_live_sessions_open", "Live WebSocket sessions open on this gateway.", nil, nil)
	scrapeErrDesc  = prometheus.NewDesc("asr_scrape_error", "1 when the database figures of this scrape could not be read.", nil, nil)
)

// scrapeCollector reads the database figures at scrape time, each query
// bounded by scrapeTimeout.
type scrapeCollector struct{ s *Server }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- tasksDesc
	ch <- workersDesc
	ch <- workersBusy
	ch <- liveOpenDesc
	ch <- scrapeErrDesc
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(liveOpenDesc, prometheus.GaugeValue, float64(s.live.open.Load()))
	failed := 0.0
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if s.MetricsService != nil {
		depths, err := s.MetricsService.QueueDepths(ctx)
		if err != nil {
			failed = 1
		}
		for _, q := range []string{asr.QueueBatch, "live"} {
			if _, ok := depths[q]; !ok && err == nil {
				depths[q] = 0
			}
		}
		for q, n := range depths {
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), q)
		}
	}
	if s.TaskService != nil {
		st, err := s.TaskService.QueueStatus(ctx, s.WorkerTimeout)
		if err != nil {
			failed = 1
		} else {
			for status, n := range map[string]int{
				asr.StatusQueued: st.Queued, asr.StatusProcessing: st.Processing, asr.StatusDone: st.Done,
				asr.StatusFailed: st.Failed, asr.StatusCanceled: st.Canceled,
			} {
				ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(n), status)
			}
			ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(st.Workers))
			ch <- prometheus.MustNewConstMetric(workersBusy, prometheus.GaugeValue, float64(st.WorkersBusy))
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, failed)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// observeRequest counts one answered request under its route pattern.
func (m *metrics) observeRequest(r *http.Request, status int, d time.Duration) {
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
	m.durations.WithLabelValues(route, r.Method).Observe(d.Seconds())
}

// watchTasks feeds the job histograms from task events: each task that turns
// done is read once for its timings. It runs until the server closes.
func (s *Server) watchTasks() {
	sub := s.EventService.Subscribe()
	defer sub.Close()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if ev.Type != asr.EventTypeTask {
				continue
			}
			var p struct {
				Op     string `json:"op"`
				Status string `json:"status"`
			}
			if json.Unmarshal(ev.Payload, &p) != nil || p.Op != "update" {
				continue
			}
			switch p.Status {
			case asr.StatusFailed, asr.StatusCanceled:
				s.metrics.tasksFinished.WithLabelValues(p.Status).Inc()
			case asr.StatusDone:
				s.metrics.tasksFinished.WithLabelValues(p.Status).Inc()
				id, err := uuid.Parse(ev.TaskID)
				if err != nil {
					continue
				}
				ctx, cancel := context.WithTimeout(s.baseCtx, scrapeTimeout)
				t, err := s.TaskService.FindTaskByID(ctx, id)
				cancel()
				if err != nil {
					continue
				}
				s.observeTask(t)
			}
		}
	}
}

// observeTask records a finished task's timings.
func (s *Server) observeTask(t *asr.Task) {
	engine := t.Engine
	if engine == "" {
		engine = "unknown"
	}
	if t.StartedAt != nil && t.FinishedAt != nil {
		s.metrics.jobDuration.WithLabelValues(engine).Observe(t.FinishedAt.Sub(*t.StartedAt).Seconds())
	}
	if t.DurationS != nil {
		s.metrics.audioDuration.WithLabelValues(engine).Observe(*t.DurationS)
	}
	if t.RTF != nil {
		s.metrics.rtf.WithLabelValues(engine).Observe(*t.RTF)
	}
}
