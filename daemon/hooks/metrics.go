package hooks

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// hookMetrics are the engine's Prometheus collectors.
type hookMetrics struct {
	calls    *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
	refused  *prometheus.CounterVec // http connections refused by the dial guard
}

func newMetrics(reg prometheus.Registerer) (*hookMetrics, error) {
	m := &hookMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "acquit", Subsystem: "hooks",
			Name: "calls_total", Help: "Lua hook calls by script and function."}, []string{"script", "function"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "acquit", Subsystem: "hooks",
			Name: "failures_total", Help: "Failed Lua hook calls by script, function and reason."}, []string{"script", "function", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "acquit", Subsystem: "hooks",
			Name: "duration_seconds", Help: "Lua hook call duration.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 30}}, []string{"script", "function"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "acquit", Subsystem: "hooks",
			Name: "reloads_total", Help: "Script folder reloads by result."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "acquit", Subsystem: "hooks",
			Name: "http_refused_total", Help: "Connections of the http module refused by address class (link_local, admin, loopback, private, unspecified, multicast)."}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.failures, m.duration, m.reloads, m.refused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// reason is the failure label of an error.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrMemoryLimit):
		return "memory"
	case errors.Is(err, ErrLimit):
		return "limit"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrNoScript), errors.Is(err, ErrNoFunction):
		return "missing"
	}
	return "error"
}

func (m *hookMetrics) observe(script, function string, d time.Duration, err error) {
	m.calls.WithLabelValues(script, function).Inc()
	m.duration.WithLabelValues(script, function).Observe(d.Seconds())
	if err != nil {
		m.failures.WithLabelValues(script, function, reason(err)).Inc()
	}
}
