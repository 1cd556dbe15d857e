// Command atos-sim runs the Worldline Sips simulator on loopback, for demos
// and manual tests: Paypage POST and JSON, a payment page, automatic and
// manual responses, Office getTransactionData, and faults.
//
//	atos-sim -listen 127.0.0.1:0 -merchant 002001000000001 -key 1:002001000000001_KEY1 \
//	         -drop 0.3 -never-return 0.3 -seed 7
//
// It prints its base URL on stdout ("atos-sim listening on http://...")
// and serves until SIGINT or SIGTERM. Faults can be changed while it runs:
// PUT /sim/faults with JSON (see sim.FaultsJSON); GET /sim/decided lists
// what it decided, GET /sim/stats its counters.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/plugins/atos/sips"
)

type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "atos-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	var keys keyList
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	merchant := flag.String("merchant", "002001000000001", "merchantId the simulator accepts")
	flag.Var(&keys, "key", "keyVersion:secret (repeatable; default 1:<merchant>_KEY1)")
	sealAlg := flag.String("seal-algorithm", "HMAC-SHA-256", "seal algorithm when a request does not say (HMAC-SHA-256 or SHA-256)")
	seed := flag.Uint64("seed", 1, "seed of the fault generator")
	drop := flag.Float64("drop", 0, "share of automatic responses dropped (0..1)")
	late := flag.Duration("late", 0, "delay before sending automatic responses")
	twice := flag.Float64("twice", 0, "share of automatic responses sent twice (0..1)")
	afterManual := flag.Bool("after-manual", false, "send each automatic response after the manual one")
	neverReturn := flag.Float64("never-return", 0, "share of customers who never return to the shop (0..1)")
	officeDelay := flag.Duration("office-delay", 0, "Office answers this late")
	officeDown := flag.Bool("office-down", false, "Office answers HTTP 503")
	attempts := flag.Int("attempts", 1, "automatic response attempts (Sips: 1)")
	verbose := flag.Bool("v", false, "log every step to stderr")
	flag.Parse()

	alg, err := sips.ParseSealAlgorithm(*sealAlg)
	if err != nil {
		return err
	}
	km := map[string]string{}
	if len(keys) == 0 {
		keys = append(keys, "1:"+*merchant+"_KEY1")
	}
	for _, k := range keys {
		v, secret, ok := strings.Cut(k, ":")
		if !ok || v == "" || secret == "" {
			return fmt.Errorf("-key %q: want keyVersion:secret", k)
		}
		km[v] = secret
	}
	for _, share := range []float64{*drop, *twice, *neverReturn} {
		if share < 0 || share > 1 {
			return fmt.Errorf("shares must be within 0..1")
		}
	}
	level := zerolog.InfoLevel
	if *verbose {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
	s := sim.New(sim.Config{
		Listen:            *listen,
		Merchants:         []sim.Merchant{{ID: *merchant, Keys: km, SealAlgorithm: alg}},
		Seed:              *seed,
		AutomaticAttempts: *attempts,
		Logger:            &log,
		Faults: sim.Faults{
			DropAutomatic: *drop, AutomaticDelay: *late, AutomaticTwice: *twice, AutomaticAfterManual: *afterManual,
			CustomerNeverReturns: *neverReturn, OfficeDelay: *officeDelay, OfficeDown: *officeDown,
		},
	})
	if err := s.Start(); err != nil {
		return err
	}
	fmt.Printf("atos-sim listening on %s\n", s.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("shutdown timed out")
	}
}
