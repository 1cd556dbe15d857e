package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterReusesTheRegisteredCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "acquit_test_total", Help: "test"}
	first, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, same collector %v", err, second == first)
	}
	// Same name, another type: refused, not silently reused.
	if _, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "acquit_test_total", Help: "test"})); err == nil {
		t.Fatal("a gauge under a counter's name was accepted")
	}
}
