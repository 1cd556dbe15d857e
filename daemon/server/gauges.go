package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/unixms"
)

// Names of the gauges read from the store at scrape time.
const (
	MetricPayments            = "acquit_payments"
	MetricAwaitingAck         = "acquit_transmissions_awaiting_ack"
	MetricAwaitingAckOldest   = "acquit_transmissions_awaiting_ack_oldest_seconds"
	MetricScheduleLastSuccess = "acquit_schedule_last_success_timestamp_seconds"
	MetricStoreGaugeErrors    = "acquit_store_gauge_errors_total"
	storeGaugeTimeout         = 3 * time.Second
)

// storeGauges is a Prometheus collector that reads, at each scrape, a few
// cheap aggregates from the store: payments by state, transmissions
// awaiting an acknowledgement per bank, and the last successful run of
// each schedule. A query that fails leaves its family out of the scrape,
// logs a warning and counts in acquit_store_gauge_errors_total{gauge}.
type storeGauges struct {
	d                                       *Daemon
	payments, awaiting, oldest, lastSuccess *prometheus.Desc
	errors                                  *prometheus.CounterVec
}

func newStoreGauges(d *Daemon) *storeGauges {
	return &storeGauges{d: d,
		payments: prometheus.NewDesc(MetricPayments, "Payments by state, read from the store at scrape time.", []string{"state"}, nil),
		awaiting: prometheus.NewDesc(MetricAwaitingAck,
			"Transmissions the bank took (submitted, received, signature_verified) and has not given its final word on, per bank.", []string{"bank"}, nil),
		oldest: prometheus.NewDesc(MetricAwaitingAckOldest,
			"Age in seconds of the oldest transmission awaiting an acknowledgement, per bank (0 when none).", []string{"bank"}, nil),
		lastSuccess: prometheus.NewDesc(MetricScheduleLastSuccess,
			"Unix time at which the last successful run of the schedule finished (absent if it never succeeded).", []string{"schedule"}, nil),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricStoreGaugeErrors,
			Help: "Store queries of the scrape-time gauges that failed, by gauge."}, []string{"gauge"}),
	}
}

// Describe implements prometheus.Collector.
func (g *storeGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.payments
	ch <- g.awaiting
	ch <- g.oldest
	ch <- g.lastSuccess
	g.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (g *storeGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeGaugeTimeout)
	defer cancel()
	fail := func(gauge string, err error) {
		g.d.log.Warn().Err(err).Str("gauge", gauge).Msg("metrics: store query failed")
		g.errors.WithLabelValues(gauge).Inc()
	}
	if p := g.d.Payments; p != nil {
		if counts, err := p.CountByState(ctx); err != nil {
			fail(MetricPayments, err)
		} else {
			for _, s := range payments.States() {
				ch <- prometheus.MustNewConstMetric(g.payments, prometheus.GaugeValue, float64(counts[s]), string(s))
			}
		}
	}
	if t := g.d.Transmissions; t != nil {
		if aw, err := t.AwaitingAcks(ctx); err != nil {
			fail(MetricAwaitingAck, err)
		} else {
			for _, b := range g.d.Config().Banks {
				if _, ok := aw[b.Name]; !ok {
					aw[b.Name] = transmissions.Awaiting{}
				}
			}
			now := time.Now()
			for bank, a := range aw {
				age := 0.0
				if a.Count > 0 && !a.OldestSubmitted.IsZero() {
					age = max(0, now.Sub(a.OldestSubmitted).Seconds())
				}
				ch <- prometheus.MustNewConstMetric(g.awaiting, prometheus.GaugeValue, float64(a.Count), bank)
				ch <- prometheus.MustNewConstMetric(g.oldest, prometheus.GaugeValue, age, bank)
			}
		}
	}
	if last, err := lastSuccessfulRuns(ctx, g.d.Store); err != nil {
		fail(MetricScheduleLastSuccess, err)
	} else {
		for name, at := range last {
			ch <- prometheus.MustNewConstMetric(g.lastSuccess, prometheus.GaugeValue, float64(at.UnixNano())/1e9, name)
		}
	}
	g.errors.Collect(ch)
}

// lastSuccessfulRuns returns when the last successful run of each schedule
// finished (schedule_runs stores Unix milliseconds).
func lastSuccessfulRuns(ctx context.Context, st store.Store) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := st.View(ctx, func(tx store.Tx) error {
		clear(out)
		rows, err := tx.Query(ctx, `SELECT schedule, MAX(finished) FROM schedule_runs WHERE ok <> 0 AND finished <> 0 GROUP BY schedule`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var ms int64
			if err := rows.Scan(&name, &ms); err != nil {
				return err
			}
			out[name] = unixms.Time(ms)
		}
		return rows.Err()
	})
	return out, err
}
