// Package metrics exposes anomalyd's Prometheus metrics: requests, commands,
// appended events, projection positions and lag, effects, and the state of the
// connections to the store and NATS. Labels never carry tenants or principals.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the registry of one anomalyd process; nothing is registered
// globally.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	commands *prometheus.CounterVec
	appended *prometheus.CounterVec
	effects  *prometheus.CounterVec
}

// New returns the metrics of a process, with the Go runtime and process
// collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "anomalyd_http_request_duration_seconds",
			Help:    "Duration of HTTP requests by route template, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "anomalyd_commands_total",
			Help: "Commands by type and outcome (ok, conflict, invalid, not_found, denied, limited, error).",
		}, []string{"command", "outcome"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "anomalyd_events_appended_total",
			Help: "Events appended to the store by type, and appends refused as concurrency conflicts or failed.",
		}, []string{"type", "outcome"}),
		effects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "anomalyd_effects_total",
			Help: "Agent effects by outcome of their publish (published, failed).",
		}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.requests, m.commands, m.appended, m.effects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// commandNames maps the route templates of commands to command names.
var commandNames = map[string]string{
	"/v1/anomalies":                         "report",
	"/v1/anomalies/{anomalyId}/investigate": "investigate",
	"/v1/anomalies/{anomalyId}/resolve":     "resolve",
	"/v1/anomalies/{anomalyId}/dismiss":     "dismiss",
	"/v1/agents/{agentId}/restore":          "restore",
	"/v1/agents/{agentId}/revoke":           "revoke",
}

// ObserveRequest records one HTTP request; a POST to a command route also
// counts as that command, with an outcome from its status.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
	if name, ok := commandNames[route]; ok && method == http.MethodPost {
		m.commands.WithLabelValues(name, outcome(status)).Inc()
	}
}

func outcome(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusConflict:
		return "conflict"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	case status == http.StatusTooManyRequests:
		return "limited"
	case status < 500:
		return "invalid"
	}
	return "error"
}

// Store counts the appends of s.
func (m *Metrics) Store(s eventstore.Store) eventstore.Store { return countingStore{Store: s, m: m} }

type countingStore struct {
	eventstore.Store
	m *Metrics
}

func (s countingStore) Append(ctx context.Context, expected uint64, ev domain.Event) (eventstore.Recorded, error) {
	r, err := s.Store.Append(ctx, expected, ev)
	result := "ok"
	switch {
	case domain.ErrorCode(err) == domain.ECONFLICT:
		result = "conflict"
	case err != nil:
		result = "error"
	}
	s.m.appended.WithLabelValues(ev.Type, result).Inc()
	return r, err
}

// Sink counts the publishes of s.
func (m *Metrics) Sink(s projections.EffectSink) projections.EffectSink {
	return countingSink{EffectSink: s, m: m}
}

type countingSink struct {
	projections.EffectSink
	m *Metrics
}

func (s countingSink) Send(ctx context.Context, e projections.Effect, after uint64, done func(error)) {
	s.EffectSink.Send(ctx, e, after, func(err error) {
		if err != nil {
			s.m.effects.WithLabelValues("failed").Inc()
		} else {
			s.m.effects.WithLabelValues("published").Inc()
		}
		done(err)
	})
}

// WatchProjections exports each runner's position and its lag behind the
// store's head (read at scrape time), and whether the store answered.
func (m *Metrics) WatchProjections(store eventstore.Store, runners []*projections.Runner) {
	m.reg.MustRegister(&projectionCollector{store: store, runners: runners})
}

// WatchNATS exports whether the NATS connection is up.
func (m *Metrics) WatchNATS(connected func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "anomalyd_nats_connected",
		Help: "1 while the connection to NATS is up.",
	}, func() float64 {
		if connected() {
			return 1
		}
		return 0
	}))
}

// WatchStartUp exports how the read model was built at start-up: the
// position of the snapshot it started from (0: it replayed the whole log),
// and how long it took until it had caught up with the log.
func (m *Metrics) WatchStartUp(snapshotPosition uint64, took time.Duration) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "anomalyd_read_model_snapshot_position",
			Help: "Store position of the snapshot the read model started from at start-up; 0 when it replayed the whole log.",
		}, func() float64 { return float64(snapshotPosition) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "anomalyd_read_model_startup_seconds",
			Help: "Seconds the start-up took until the read model had caught up with the log (NATS start, snapshot read and replay included).",
		}, func() float64 { return took.Seconds() }),
	)
}

// WatchSnapshots exports where the last read-model snapshot written by this
// process was taken (0: none yet), as written reports it.
func (m *Metrics) WatchSnapshots(written func() (position uint64, at time.Time)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "anomalyd_read_model_snapshot_written_position",
			Help: "Store position of the last read-model snapshot this process wrote; 0 before the first. A start after a crash replays the log from there.",
		}, func() float64 { p, _ := written(); return float64(p) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "anomalyd_read_model_snapshot_written_timestamp_seconds",
			Help: "Unix time at which this process last wrote a read-model snapshot; 0 before the first.",
		}, func() float64 {
			if _, at := written(); !at.IsZero() {
				return float64(at.UnixNano()) / 1e9
			}
			return 0
		}),
	)
}

// WatchCommandCache exports how the commands on anomalies found their state:
// decided on a state the service kept, or loaded from the store (stats is
// app.Service.CacheStats, as plain numbers).
func (m *Metrics) WatchCommandCache(stats func() (hits, loads uint64, kept int)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "anomalyd_command_cache_hits_total",
			Help: "Commands on anomalies decided on a state the service kept, without reading the stream.",
		}, func() float64 { h, _, _ := stats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "anomalyd_command_anomaly_loads_total",
			Help: "Anomalies read from the store and their hash chain checked for a command (none kept, or decided again).",
		}, func() float64 { _, l, _ := stats(); return float64(l) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "anomalyd_command_cache_states",
			Help: "Anomaly states the command side keeps now (at most --command-cache).",
		}, func() float64 { _, _, k := stats(); return float64(k) }),
	)
}

var (
	positionDesc = prometheus.NewDesc("anomalyd_projection_position",
		"Store position of the last event a projection applied.", []string{"projection"}, nil)
	lagDesc = prometheus.NewDesc("anomalyd_projection_lag",
		"How far a projection is behind the store's head, in store positions.", []string{"projection"}, nil)
	headDesc = prometheus.NewDesc("anomalyd_store_head_position",
		"Position of the latest event in the store.", nil, nil)
	storeUpDesc = prometheus.NewDesc("anomalyd_store_up",
		"1 when the event store answered the last scrape's head request.", nil, nil)
)

type projectionCollector struct {
	store   eventstore.Store
	runners []*projections.Runner
}

func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- positionDesc
	ch <- lagDesc
	ch <- headDesc
	ch <- storeUpDesc
}

func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	head, err := c.store.Head(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, up)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(headDesc, prometheus.GaugeValue, float64(head))
	}
	for _, r := range c.runners {
		name, pos := r.Name(), r.Position()
		ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(pos), name)
		if err == nil {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(head-min(pos, head)), name)
		}
	}
}
