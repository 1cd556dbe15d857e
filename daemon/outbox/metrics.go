package outbox

import (
	"fmt"
	"github.com/acquit/acquit/internal/promreg"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	delivered, failed, dead *prometheus.CounterVec
	poison                  *prometheus.CounterVec
	latency                 *prometheus.HistogramVec
	handlerSeconds          prometheus.Histogram
	backlog, inFlight       prometheus.Gauge
	deadNow, oldest         prometheus.Gauge
}

// Metric names, exported for dashboards and tests.
const (
	MetricDelivered = "acquit_outbox_delivered_total"
	MetricFailed    = "acquit_outbox_failed_total"
	MetricDead      = "acquit_outbox_dead_total"
	MetricLatency   = "acquit_outbox_delivery_latency_seconds"
	MetricHandler   = "acquit_outbox_handler_seconds"
	MetricBacklog   = "acquit_outbox_backlog"
	MetricInFlight  = "acquit_outbox_in_flight"
	MetricDeadNow   = "acquit_outbox_dead_events"
	MetricOldest    = "acquit_outbox_oldest_pending_age_seconds"
	MetricPoison    = "acquit_outbox_poison_total"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricDelivered,
			Help: "Outbox events delivered (handler returned nil), by event type."}, []string{"type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricFailed,
			Help: "Failed outbox delivery attempts, by event type."}, []string{"type"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricDead,
			Help: "Outbox events given up (dead-lettered), by event type."}, []string{"type"}),
		poison: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPoison,
			Help: "Outbox events dead-lettered as poison (in flight when the process died PoisonAfter times in a row), by event type."}, []string{"type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricLatency,
			Help:    "Time from an event's emission to its successful delivery, by event type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}, []string{"type"}),
		handlerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricHandler,
			Help: "Duration of one handler call.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 11)}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBacklog,
			Help: "Outbox events pending delivery (sampled at most once per poll interval)."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricInFlight,
			Help: "Outbox handlers running now."}),
		deadNow: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricDeadNow,
			Help: "Dead outbox events waiting for an operator to replay them (alert when > 0)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricOldest,
			Help: "Age of the oldest pending outbox event (0 when none)."}),
	}
	if reg == nil {
		return m, nil
	}
	// A second dispatcher on the same registry shares the collectors.
	var err error
	m.delivered, err = promreg.Register(reg, m.delivered)
	if err == nil {
		m.failed, err = promreg.Register(reg, m.failed)
	}
	if err == nil {
		m.dead, err = promreg.Register(reg, m.dead)
	}
	if err == nil {
		m.poison, err = promreg.Register(reg, m.poison)
	}
	if err == nil {
		m.latency, err = promreg.Register(reg, m.latency)
	}
	if err == nil {
		m.handlerSeconds, err = promreg.Register(reg, m.handlerSeconds)
	}
	if err == nil {
		m.backlog, err = promreg.Register(reg, m.backlog)
	}
	if err == nil {
		m.inFlight, err = promreg.Register(reg, m.inFlight)
	}
	if err == nil {
		m.deadNow, err = promreg.Register(reg, m.deadNow)
	}
	if err == nil {
		m.oldest, err = promreg.Register(reg, m.oldest)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox metrics: %w", err)
	}
	return m, nil
}
