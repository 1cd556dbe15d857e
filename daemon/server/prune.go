package server

import (
	"context"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the retention of raw inputs nothing verified (state.raw_retention).
const (
	MetricRawPruned           = "acquit_raw_inputs_pruned_total"
	MetricRawPruneErrors      = "acquit_raw_prune_errors_total"
	MetricRawPruneLastSuccess = "acquit_raw_prune_last_success_timestamp_seconds"
	MetricRawBodiesSwept      = "acquit_raw_bodies_swept_total"
)

// rawPruneEvery is the period of the raw input pruning; the first run is
// at start. rawPruneBatch is how many inputs one transaction examines: a
// few milliseconds of the single SQLite writer each.
const (
	rawPruneEvery = time.Hour
	rawPruneBatch = 500
)

// rawPruneMetrics counts what the pruning did.
type rawPruneMetrics struct {
	pruned, errors, swept prometheus.Counter
	last                  prometheus.Gauge
}

func newRawPruneMetrics(reg prometheus.Registerer) *rawPruneMetrics {
	m := &rawPruneMetrics{
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRawPruned,
			Help: "Raw inputs nothing verified (refused, or never verified) deleted past state.raw_retention, with their verdicts."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRawPruneErrors,
			Help: "Runs of the raw input pruning that failed (retried at the next run)."}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRawBodiesSwept,
			Help: "Large bodies whose writer died before its raw input was committed (kill -9, a failed cleanup), deleted with their chunks."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricRawPruneLastSuccess,
			Help: "Unix time at which the last successful run of the raw input pruning finished (0 before the first)."}),
	}
	reg.MustRegister(m.pruned, m.errors, m.swept, m.last)
	return m
}

// rawPruneLoop deletes, at start and then hourly, the raw inputs that
// nothing verified once they are older than state.raw_retention (0: never).
// It runs on every instance, as the pruning of delivered events does: a
// run is idempotent and two instances at worst examine the same rows. A
// failure is logged, counted and retried at the next run, never fatal.
func (d *Daemon) rawPruneLoop(ctx context.Context) {
	t := time.NewTicker(rawPruneEvery)
	defer t.Stop()
	for {
		d.pruneRawOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneRawOnce sweeps the orphan bodies, then runs the pruning once with
// the retention in force.
func (d *Daemon) pruneRawOnce(ctx context.Context) {
	d.sweepRawBodies(ctx)
	retention := d.Config().State.RawRetention
	if retention <= 0 {
		return
	}
	start := time.Now()
	before := start.Add(-retention)
	n, err := d.Store.PruneRaw(ctx, before, rawPruneBatch)
	d.rawPrune.pruned.Add(float64(n))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.rawPrune.errors.Inc()
		d.log.Warn().Err(err).Int("pruned", n).Dur("retention", retention).
			Msg("raw input pruning failed; retried at the next run")
		return
	}
	d.rawPrune.last.Set(float64(time.Now().UnixNano()) / 1e9)
	ev := d.log.Debug()
	if n > 0 {
		ev = d.log.Info()
	}
	ev.Int("pruned", n).Dur("retention", retention).Time("received_before", before).Dur("took", time.Since(start)).
		Msg("raw inputs nothing verified, past their retention, pruned")
}

// sweepRawBodies deletes the bodies of large downloads whose writer died
// before their raw input was committed (store.SweepRawBodies), whatever
// the retention: they are no stored document. A body written to within
// store.RawBodyIdle is left alone, on this instance or another one.
func (d *Daemon) sweepRawBodies(ctx context.Context) {
	n, err := d.Store.SweepRawBodies(ctx, time.Now().Add(-store.RawBodyIdle))
	d.rawPrune.swept.Add(float64(n))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.rawPrune.errors.Inc()
		d.log.Warn().Err(err).Int("swept", n).Msg("sweep of orphan raw bodies failed; retried at the next run")
		return
	}
	if n > 0 {
		d.log.Info().Int("swept", n).Dur("idle", store.RawBodyIdle).
			Msg("orphan raw bodies deleted: their writer died before the raw input was committed")
	}
}
