// Package metrics turns a bridge.Server's events and snapshots into
// Prometheus metrics. Labels are constants and configured target names
// only: never a token, a client address or other text from a request.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsbridge/wsbridge/bridge"
)

// Metrics is a registry of wsbridge's metrics and the bridge.Observer that
// feeds them. Its methods may be called from several goroutines.
type Metrics struct {
	reg *prometheus.Registry

	ended     *prometheus.CounterVec
	refused   *prometheus.CounterVec
	dial      *prometheus.HistogramVec
	targetErr *prometheus.CounterVec
	waits     *prometheus.CounterVec
	waited    *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	reloadOK  prometheus.Gauge
	reloadAt  prometheus.Gauge
	selfCheck prometheus.Gauge
}

var _ bridge.Observer = (*Metrics)(nil)

// New registers the metrics; version is the build's version.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_sessions_total",
		Help: "Sessions that ended, by target, who ended them (client, target, server) and WebSocket close code.",
	}, []string{"target", "outcome", "close_code"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_handshake_refusals_total",
		Help: "Requests answered with an error status before any upgrade, by reason.",
	}, []string{"reason"})
	m.dial = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wsbridge_dial_duration_seconds",
		Help:    "Time to connect to a target (TCP, PROXY header and TLS), successful dials only.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"target"})
	m.targetErr = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_target_errors_total",
		Help: "Target failures: stage dial (could not connect) or relay (reset or write failure after the upgrade).",
	}, []string{"target", "stage"})
	m.waits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_limiter_waits_total",
		Help: "Times a session waited for bandwidth, by direction (in: client to target).",
	}, []string{"direction"})
	m.waited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_limiter_wait_seconds_total",
		Help: "Time sessions spent waiting for bandwidth, by direction.",
	}, []string{"direction"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsbridge_config_reloads_total",
		Help: "Configuration reloads, by result (success, failure).",
	}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wsbridge_config_last_reload_successful",
		Help: "1 when the configuration in use is the file's latest, 0 when the last reload was refused.",
	})
	m.reloadAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wsbridge_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in use was loaded, in Unix seconds.",
	})
	m.selfCheck = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wsbridge_self_check_round_trip_seconds",
		Help: "Round trip of the last end-to-end self-check through the listener; -1 when it failed.",
	})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "wsbridge_build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(time.Now().Unix()))
	for _, dir := range []string{"in", "out"} {
		m.waits.WithLabelValues(dir)
		m.waited.WithLabelValues(dir)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	m.reg.MustRegister(m.ended, m.refused, m.dial, m.targetErr, m.waits, m.waited,
		m.reloads, m.reloadOK, m.reloadAt, m.selfCheck, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Watch adds the metrics read from srv at scrape time: live sessions and
// bytes relayed.
func (m *Metrics) Watch(srv *bridge.Server) {
	m.reg.MustRegister(&serverCollector{srv: srv})
}

// Targets makes the per-target series of names exist at zero, so that
// dashboards and rate() see a target before its first session.
func (m *Metrics) Targets(names []string) {
	for _, n := range names {
		m.dial.WithLabelValues(n)
		m.targetErr.WithLabelValues(n, "dial")
		m.targetErr.WithLabelValues(n, "relay")
	}
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Reloaded counts a reload.
func (m *Metrics) Reloaded(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(time.Now().Unix()))
}

// SelfChecked records a self-check's round trip, or its failure.
func (m *Metrics) SelfChecked(rtt time.Duration, err error) {
	if err != nil {
		m.selfCheck.Set(-1)
		return
	}
	m.selfCheck.Set(rtt.Seconds())
}

func (m *Metrics) Refused(kind string) { m.refused.WithLabelValues(kind).Inc() }

func (m *Metrics) Dialled(target string, took time.Duration, err error) {
	if err != nil {
		m.targetErr.WithLabelValues(target, "dial").Inc()
		return
	}
	m.dial.WithLabelValues(target).Observe(took.Seconds())
}

func (m *Metrics) Ended(target, by string, code int) {
	m.ended.WithLabelValues(target, by, strconv.Itoa(code)).Inc()
	if by == "target" && code == 1011 {
		m.targetErr.WithLabelValues(target, "relay").Inc()
	}
}

func (m *Metrics) Waited(dir string, d time.Duration) {
	m.waits.WithLabelValues(dir).Inc()
	m.waited.WithLabelValues(dir).Add(d.Seconds())
}

// serverCollector reads a Server's snapshot once per scrape.
type serverCollector struct{ srv *bridge.Server }

var (
	activeDesc   = prometheus.NewDesc("wsbridge_sessions_active", "Live sessions, by target.", []string{"target"}, nil)
	bytesDesc    = prometheus.NewDesc("wsbridge_bytes_total", "Bytes relayed, by direction (in: client to target, out: target to client), live sessions included.", []string{"direction"}, nil)
	upgradedDesc = prometheus.NewDesc("wsbridge_sessions_started_total", "Sessions upgraded since start.", nil, nil)
	drainDesc    = prometheus.NewDesc("wsbridge_draining", "1 while wsbridge is shutting down.", nil, nil)
)

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- bytesDesc
	ch <- upgradedDesc
	ch <- drainDesc
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	for target, n := range st.Active {
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(n), target)
	}
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(st.BytesIn), "in")
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(st.BytesOut), "out")
	ch <- prometheus.MustNewConstMetric(upgradedDesc, prometheus.CounterValue, float64(st.Total))
	drain := 0.0
	if st.Draining {
		drain = 1
	}
	ch <- prometheus.MustNewConstMetric(drainDesc, prometheus.GaugeValue, drain)
}
