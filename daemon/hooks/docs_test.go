package hooks

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestDocExamples runs every per-event example of docs/lua.md with its
// event fixture against a loopback server.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/lua.md")
	if err != nil {
		t.Fatal(err)
	}
	mailSrc, err := os.ReadFile("../../scripts/mail.lua")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)[strings.Index(string(doc), "## One example per event type"):]
	re := regexp.MustCompile("(?s)\\*\\*([a-z_.]+)\\*\\*.*?```lua\n(.*?)```")
	ms := re.FindAllStringSubmatch(section, -1)
	types := []string{"payment.accepted", "payment.refused", "payment.cancelled", "payment.unknown", "payment.conflict",
		"payment.mismatch", "transmission.submitted", "transmission.accepted", "transmission.partially_accepted",
		"transmission.rejected", "transmission.unsent", "transmission.unacknowledged", "ack.unmatched"}
	if len(ms) != len(types) {
		t.Fatalf("found %d examples, want %d", len(ms), len(types))
	}
	for i, m := range ms {
		evType, code := m[1], m[2]
		if evType != types[i] {
			t.Errorf("example %d is %s, want %s", i, evType, types[i])
		}
		t.Run(evType, func(t *testing.T) {
			srv := newShopServer(t)
			fn := regexp.MustCompile(`function (\w+)\(event\)`).FindStringSubmatch(code)[1]
			src := "local http, config, mail = require \"http\", require \"config\", require \"mail\"\n" + code
			e, err := New(Options{
				Dir:      writeScripts(t, map[string]string{"ex.lua": src, "mail.lua": string(mailSrc)}),
				Bindings: []Binding{{Events: []string{evType}, Script: "ex", Function: fn}},
				KV:       newMemKV(), Logger: zerolog.Nop(), HTTPAllow: loopbackAllowed,
				Config: map[string]any{"shop": map[string]any{"url": srv.URL}, "mail": map[string]any{"url": srv.URL + "/mail", "alert_to": "ops@example.com"},
					"treasury": map[string]any{"erp_url": srv.URL + "/erp", "email": "t@example.com"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if err := e.Deliver(context.Background(), loadEvent(t, evType), 1); err != nil {
				t.Fatalf("example fails: %v", err)
			}
			quiet := evType == "payment.cancelled" || evType == "transmission.submitted"
			if n := len(srv.requests()); (n == 0) != quiet {
				t.Errorf("%d requests made", n)
			}
		})
	}
}
