package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// exampleBindings are the bindings documented in scripts/*.lua.
var exampleBindings = []Binding{
	{Events: []string{"payment.accepted"}, Script: "shop", Function: "on_accepted"},
	{Events: []string{"payment.refused", "payment.cancelled"}, Script: "shop", Function: "on_failed"},
	{Events: []string{"payment.unknown", "payment.conflict", "payment.mismatch"}, Script: "shop", Function: "on_alert"},
	{Events: []string{"transmission.accepted"}, Script: "treasury", Function: "on_accepted"},
	{Events: []string{"transmission.partially_accepted"}, Script: "treasury", Function: "on_partial"},
	{Events: []string{"transmission.rejected"}, Script: "treasury", Function: "on_rejected"},
	{Events: []string{"transmission.unacknowledged"}, Script: "treasury", Function: "on_unacknowledged"},
	{Events: []string{"transmission.unsent"}, Script: "treasury", Function: "on_unsent"},
	{Events: []string{"ack.unmatched"}, Script: "treasury", Function: "on_unmatched"},
	{Events: []string{"*"}, Script: "demo", Function: "on_event"},
}

func exampleEngine(t *testing.T, base string) (*Engine, *memKV) {
	t.Helper()
	kvs := newMemKV()
	e, err := New(Options{
		Dir: "../../scripts", Bindings: exampleBindings, KV: kvs, Logger: zerolog.Nop(), HTTPAllow: loopbackAllowed,
		Config: map[string]any{
			"shop":     map[string]any{"url": base + "/shop", "token": "shop-token"},
			"mail":     map[string]any{"url": base + "/mail", "from": "acquit@example.com", "alert_to": "ops@example.com"},
			"treasury": map[string]any{"erp_url": base + "/erp", "email": "treasurer@example.com"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, kvs
}

func TestExampleScriptsCheckClean(t *testing.T) {
	if d := Check("../../scripts"); len(d) != 0 {
		t.Fatalf("scripts/ has problems: %v", d)
	}
}

func TestExampleScripts(t *testing.T) {
	type want struct {
		path   string
		fields map[string]any // JSON body fields
		text   string         // substring of the mail text/subject
	}
	cases := []struct {
		event string
		reqs  []want
	}{
		{"payment.accepted", []want{{path: "/shop/orders/ORD-1001/paid", fields: map[string]any{"reference": "A000000042", "amount": 12950.0, "currency": "EUR", "event_id": "01JD0000000000000000000A"}}}},
		{"payment.refused", []want{{path: "/shop/orders/ORD-1001/failed", fields: map[string]any{"reason": "refused", "response_code": "05"}}}},
		{"payment.cancelled", []want{{path: "/shop/orders/ORD-1001/failed", fields: map[string]any{"reason": "cancelled"}}}},
		{"payment.unknown", []want{{path: "/mail", fields: map[string]any{"to": "ops@example.com"}, text: "129.50 EUR) is unknown"}, {path: "/shop/orders/ORD-1001/hold", fields: map[string]any{"reason": "unknown"}}}},
		{"payment.conflict", []want{{path: "/mail", text: "manual says refused"}, {path: "/shop/orders/ORD-1001/hold", fields: map[string]any{"reason": "conflict"}}}},
		{"payment.mismatch", []want{{path: "/mail", text: "amount 12950 EUR expected"}, {path: "/shop/orders/ORD-1001/hold", fields: map[string]any{"reason": "mismatch"}}}},
		{"transmission.submitted", nil},
		{"transmission.accepted", []want{{path: "/erp", fields: map[string]any{"status": "accepted", "transmission_id": "TX-7", "msg_id": "MSG-2026-11-23-01"}}}},
		{"transmission.partially_accepted", []want{{path: "/erp", fields: map[string]any{"status": "partially_accepted"}}, {path: "/mail", fields: map[string]any{"to": "treasurer@example.com"}, text: "E2E-0002 Bob Supplier 500.00 EUR: AC04 Closed account number"}}},
		{"transmission.rejected", []want{{path: "/erp", fields: map[string]any{"status": "rejected"}}, {path: "/mail", text: "group MSG-2026-11-23-01: FF01 Invalid file format"}}},
		{"transmission.unacknowledged", []want{{path: "/erp", fields: map[string]any{"status": "unacknowledged"}}, {path: "/mail", text: "No acknowledgement arrived before 2026-11-23T21:01:00Z"}}},
		{"transmission.unsent", []want{{path: "/erp", fields: map[string]any{"status": "unsent"}}, {path: "/mail", text: "still not uploaded after 17 attempts (last error: ebics upload TX-8: post https://ebics.example.com/ebics: connection refused)"}}},
		{"ack.unmatched", []want{{path: "/mail", text: "group MSG-UNKNOWN-1 RJCT DU01 Duplicate message ID"}}},
	}
	for _, tc := range cases {
		t.Run(tc.event, func(t *testing.T) {
			srv := newShopServer(t)
			e, kvs := exampleEngine(t, srv.URL)
			ev := loadEvent(t, tc.event)
			if err := e.Deliver(context.Background(), ev, 1); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			if len(reqs) != len(tc.reqs) {
				t.Fatalf("%d requests, want %d: %+v", len(reqs), len(tc.reqs), reqs)
			}
			for i, w := range tc.reqs {
				r := reqs[i]
				if r.Method != "POST" || r.Path != w.path {
					t.Errorf("request %d: %s %s, want POST %s", i, r.Method, r.Path, w.path)
				}
				var body map[string]any
				if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
					t.Fatalf("request %d body %q: %v", i, r.Body, err)
				}
				for k, v := range w.fields {
					if body[k] != v {
						t.Errorf("request %d: %s = %v, want %v", i, k, body[k], v)
					}
				}
				if w.text != "" && !strings.Contains(body["text"].(string)+body["subject"].(string), w.text) {
					t.Errorf("mail lacks %q: %s", w.text, body["text"])
				}
				if strings.HasPrefix(w.path, "/shop") {
					if r.Header.Get("Idempotency-Key") != ev.ID || r.Header.Get("Authorization") != "Bearer shop-token" {
						t.Errorf("shop headers: %v", r.Header)
					}
				}
			}
			// demo.lua counted the event.
			if v, _, _ := kvs.KVGet(context.Background(), "script:demo", "events:"+tc.event); v != "1" {
				t.Errorf("demo count = %q", v)
			}
			// A retry of a treasury event sends no second mail.
			if strings.HasPrefix(tc.event, "transmission.") || tc.event == "ack.unmatched" {
				before := len(srv.requests())
				if err := e.Deliver(context.Background(), ev, 2); err != nil {
					t.Fatal(err)
				}
				if after := len(srv.requests()); after != before {
					t.Errorf("retry sent %d more requests", after-before)
				}
			}
		})
	}
}

func TestExampleScriptsFailures(t *testing.T) {
	srv := newShopServer(t)
	// Shop answering 503: the hook fails (retried by the outbox).
	e, _ := exampleEngine(t, srv.URL+"/fail?x=")
	err := e.Deliver(context.Background(), loadEvent(t, "payment.accepted"), 1)
	if he := mustKind(t, err, ErrHookFailed); !strings.Contains(he.Message, "shop API answered 503") || he.File != "shop.lua" {
		t.Errorf("503: %v", err)
	}
	// Hostile order id never reaches a URL.
	ev := loadEvent(t, "payment.accepted")
	ev.Payload = []byte(strings.Replace(string(ev.Payload), `"ORD-1001"`, `"../../admin"`, 1))
	e2, _ := exampleEngine(t, srv.URL)
	n := len(srv.requests())
	if err := e2.Deliver(context.Background(), ev, 1); !errors.Is(err, ErrHookFailed) || !strings.Contains(err.Error(), "no usable order_id") {
		t.Errorf("hostile order id: %v", err)
	}
	if len(srv.requests()) != n {
		t.Error("hostile order id was sent")
	}
	// Partial failure of treasury: ERP ok, mail down -> the retry only
	// sends the mail.
	var mailUp atomic.Bool
	var erpCalls, mailCalls atomic.Int32
	srv2 := newShopServer(t)
	srv2.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/erp":
			erpCalls.Add(1)
		case "/mail":
			mailCalls.Add(1)
			if !mailUp.Load() {
				w.WriteHeader(502)
				return
			}
		}
		w.Write([]byte("{}"))
	})
	e3, _ := exampleEngine(t, srv2.URL)
	ev = loadEvent(t, "transmission.rejected")
	if err := e3.Deliver(context.Background(), ev, 1); err == nil || !strings.Contains(err.Error(), "mail: API answered 502") {
		t.Fatalf("mail down: %v", err)
	}
	mailUp.Store(true)
	if err := e3.Deliver(context.Background(), ev, 2); err != nil {
		t.Fatal(err)
	}
	if erpCalls.Load() != 1 || mailCalls.Load() != 2 {
		t.Errorf("erp=%d mail=%d, want 1 and 2", erpCalls.Load(), mailCalls.Load())
	}
}
