package pluginhost

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the plugin host's Prometheus metrics.
type metrics struct {
	restarts  *prometheus.CounterVec
	rpcErrors *prometheus.CounterVec
	up        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acquit_plugin_restarts_total",
			Help: "Plugin processes restarted after they died or stopped answering.",
		}, []string{"plugin"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acquit_plugin_rpc_errors_total",
			Help: "Plugin calls that returned an error, by kind (reject, unavailable, canceled, error).",
		}, []string{"plugin", "method", "kind"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "acquit_plugin_up",
			Help: "1 when the plugin process is running and configured, else 0.",
		}, []string{"plugin"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.restarts, err = register(reg, m.restarts)
	if err != nil {
		return nil, err
	}
	m.rpcErrors, err = register(reg, m.rpcErrors)
	if err != nil {
		return nil, err
	}
	m.up, err = register(reg, m.up)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description (a second Manager on one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
