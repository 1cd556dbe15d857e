package pluginhost

import (
	"github.com/acquit/acquit/internal/promreg"

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
	m.restarts, err = promreg.Register(reg, m.restarts)
	if err != nil {
		return nil, err
	}
	m.rpcErrors, err = promreg.Register(reg, m.rpcErrors)
	if err != nil {
		return nil, err
	}
	m.up, err = promreg.Register(reg, m.up)
	if err != nil {
		return nil, err
	}
	return m, nil
}
