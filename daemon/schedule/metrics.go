package schedule

import (
	"github.com/acquit/acquit/internal/promreg"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	skipped  *prometheus.CounterVec
}

// newMetrics creates the scheduler's metrics and registers them with reg
// (nil: unregistered). Metrics already registered (a second Scheduler after
// a reload) are reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acquit_schedule_runs_total",
			Help: "Schedule runs by schedule and outcome (ok, error, store_error).",
		}, []string{"schedule", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "acquit_schedule_run_duration_seconds",
			Help:    "Duration of schedule runs.",
			Buckets: []float64{0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600},
		}, []string{"schedule"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acquit_schedule_skipped_total",
			Help: "Due runs not started: overlap (previous run still going here) or taken (another instance ran it, or a run is going there).",
		}, []string{"schedule", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.runs, err = promreg.Register(reg, m.runs)
	if err != nil {
		return nil, err
	}
	m.duration, err = promreg.Register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.skipped, err = promreg.Register(reg, m.skipped)
	if err != nil {
		return nil, err
	}
	return m, nil
}
