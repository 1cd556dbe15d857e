// Command worldline-sim serves the Worldline Direct simulator on loopback:
// the API acquit calls (GCS v1HMAC checked), the hosted payment page, and
// signed webhooks to -webhook-url with injectable faults.
//
//	worldline-sim -listen 127.0.0.1:8471 -merchant acquitshop -api-key KEYID:SECRET \
//	    -webhook-key whk1:WEBHOOKSECRET -webhook-url http://127.0.0.1:8080/notify/worldline/automatic \
//	    -drop 0.3 -duplicate 0.1 -reorder 0.1 -max-delay 2s -seed 7
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/acquit/acquit/plugins/worldline/sim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	merchant := flag.String("merchant", "acquitshop", "merchant id (PSPID)")
	apiKey := flag.String("api-key", "", "API key as KEYID:SECRET")
	webhookKey := flag.String("webhook-key", "", "webhook key as KEYID:SECRET")
	webhookURL := flag.String("webhook-url", "", "where webhooks are POSTed")
	drop := flag.Float64("drop", 0, "share of webhooks never sent")
	dup := flag.Float64("duplicate", 0, "share of webhooks sent twice")
	reorder := flag.Float64("reorder", 0, "share of payments whose webhooks are sent in reverse order")
	maxDelay := flag.Duration("max-delay", 0, "each webhook delayed by up to this")
	uncertain := flag.Float64("uncertain", 0, "share of accepted payments first reported uncertain (92)")
	expire := flag.Duration("expire-after", 0, "checkout lifetime instead of the requested sessionTimeout")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	flag.Parse()
	ak, as, ok1 := strings.Cut(*apiKey, ":")
	wk, ws, ok2 := strings.Cut(*webhookKey, ":")
	if !ok1 || !ok2 || ak == "" || as == "" || wk == "" || ws == "" {
		fmt.Fprintln(os.Stderr, "worldline-sim: -api-key and -webhook-key are KEYID:SECRET")
		os.Exit(2)
	}
	s := sim.New(sim.Config{
		Merchants: []sim.Merchant{{ID: *merchant, APIKeys: map[string]string{ak: as}, WebhookKeyID: wk, WebhookSecret: ws, WebhookURL: *webhookURL}},
		Seed:      *seed, Listen: *listen, ExpireAfter: *expire,
		Faults: sim.Faults{Drop: *drop, Duplicate: *dup, Reorder: *reorder, MaxDelay: *maxDelay, Uncertain: *uncertain},
	})
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "worldline-sim listening on %s\n", s.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = s.Close()
}
