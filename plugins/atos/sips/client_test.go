package sips

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/sdk"
)

// officeServer answers getTransactionData with fixture, sealed with key
// unless key is "". It checks the request's seal first, as Office does.
func officeServer(t *testing.T, fixture, key string) *httptest.Server {
	t.Helper()
	acc := simAccount()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathGetTransactionData {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if _, err := verifyJSON(body, acc, "1", "x"); err != nil {
			t.Errorf("request seal: %v", err)
			w.Write([]byte(`{"responseCode":"34"}`))
			return
		}
		var msg map[string]any
		if err := json.Unmarshal([]byte(readFixture(t, fixture)), &msg); err != nil {
			t.Fatal(err)
		}
		var out []byte
		if key == "" {
			out, _ = json.Marshal(msg)
		} else {
			var err error
			out, err = MarshalSealed(msg, HMACSHA256, "1", key)
			if err != nil {
				t.Fatal(err)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
}

func TestGetTransactionData(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		key     string
		ref     Reference
		outcome sdk.Outcome
		ask     bool
		amount  int64
		errCode string // reject code, or "api:NN"
	}{
		{"captured", "office_captured.json", simKey, Reference{TransactionReference: "ACQ20261123A0001"}, sdk.OutcomeAccepted, false, 2500, ""},
		{"refused", "office_refused.json", simKey, Reference{TransactionReference: "ACQ20261123A0002"}, sdk.OutcomeRefused, false, 12990, ""},
		{"not found", "office_notfound.json", simKey, Reference{TransactionReference: "NEVER"}, sdk.OutcomeNotFound, false, 0, ""},
		{"s10", "office_s10.json", simKey, Reference{S10TransactionID: "000123", S10TransactionIDDate: "20261123"}, sdk.OutcomeAccepted, false, 990, ""},
		{"unknown status asks later", "office_unknown_status.json", simKey, Reference{TransactionReference: "ACQ20261123A0001"}, sdk.OutcomePending, true, 2500, ""},
		{"busy unsealed asks later", "office_busy.json", "", Reference{TransactionReference: "X"}, sdk.OutcomePending, true, 0, ""},
		{"request seal refused", "office_badseal.json", "", Reference{TransactionReference: "X"}, "", false, 0, "api:34"},
		{"forged answer seal", "office_captured.json", "another-key", Reference{TransactionReference: "ACQ20261123A0001"}, "", false, 0, RejectBadSeal},
		{"unsealed acceptance", "office_captured.json", "", Reference{TransactionReference: "ACQ20261123A0001"}, "", false, 0, RejectMissingField},
		{"s10 answer of another day", "office_s10.json", simKey, Reference{S10TransactionID: "000123", S10TransactionIDDate: "20261124"}, "", false, 0, RejectMalformed},
		{"answer about another transaction", "office_captured.json", simKey, Reference{TransactionReference: "OTHER"}, "", false, 0, RejectMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := officeServer(t, tt.fixture, tt.key)
			defer srv.Close()
			c := &Client{Timeout: 5 * time.Second}
			td, err := c.GetTransactionData(context.Background(), OfficeQuery{
				BaseURL: srv.URL, Account: simAccount(), KeyVersion: "1", InterfaceVersion: "DR_WS_2.58", Ref: tt.ref,
			})
			if tt.errCode != "" {
				if strings.HasPrefix(tt.errCode, "api:") {
					apiErr, ok := IsAPIError(err)
					if !ok || apiErr.ResponseCode != tt.errCode[4:] {
						t.Fatalf("err = %v, want APIError %s", err, tt.errCode)
					}
					if tt.errCode == "api:34" && !strings.Contains(apiErr.Message, "keyVersion") {
						t.Fatalf("34 explanation %q does not point at the key", apiErr.Message)
					}
					return
				}
				if RejectCode(err) != tt.errCode {
					t.Fatalf("err = %v, want %s", err, tt.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if td.Interpretation.Outcome != tt.outcome || td.Interpretation.AskLater != tt.ask || td.Amount != tt.amount {
				t.Fatalf("got %+v", td)
			}
		})
	}
}

func TestOfficeTransportFaults(t *testing.T) {
	q := func(url string) OfficeQuery {
		return OfficeQuery{BaseURL: url, Account: simAccount(), KeyVersion: "1", InterfaceVersion: "DR_WS_2.58", Ref: Reference{TransactionReference: "R"}}
	}
	t.Run("http 503", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		_, err := (&Client{}).GetTransactionData(context.Background(), q(srv.URL))
		if e, ok := IsAPIError(err); !ok || e.HTTPStatus != 503 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("oversized answer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"responseCode":"00","x":"` + strings.Repeat("a", 2048) + `"}`))
		}))
		defer srv.Close()
		_, err := (&Client{MaxResponse: 1024}).GetTransactionData(context.Background(), q(srv.URL))
		if RejectCode(err) != RejectTooLarge {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("slow answer times out", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		_, err := (&Client{Timeout: 50 * time.Millisecond}).GetTransactionData(context.Background(), q(srv.URL))
		if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "Timeout") {
			t.Fatalf("err = %v, want a timeout", err)
		}
	})
	t.Run("not json", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`<html>oops</html>`))
		}))
		defer srv.Close()
		_, err := (&Client{}).GetTransactionData(context.Background(), q(srv.URL))
		if RejectCode(err) != RejectMalformed {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPaymentInit(t *testing.T) {
	acc := simAccount()
	var status string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f, err := verifyJSON(body, acc, "1", "x")
		if err != nil {
			t.Errorf("request: %v", err)
		}
		if f["normalReturnUrl"] == "" || f["merchantId"] != acc.MerchantID {
			t.Errorf("request fields %v", f)
		}
		out, _ := MarshalSealed(map[string]any{
			"redirectionStatusCode": status, "redirectionUrl": "https://pay.example/page", "redirectionData": "tok123", "redirectionVersion": "IR_WS_2.0",
		}, HMACSHA256, "1", simKey)
		w.Write(out)
	}))
	defer srv.Close()
	c := &Client{}
	status = "00"
	r, err := c.PaymentInit(context.Background(), srv.URL, acc, "1", map[string]any{"amount": "100", "normalReturnUrl": "https://shop/x", "transactionReference": "R1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "https://pay.example/page" || r.FormFields()["redirectionData"] != "tok123" {
		t.Fatalf("redirection = %+v", r)
	}
	status = "94"
	_, err = c.PaymentInit(context.Background(), srv.URL, acc, "1", map[string]any{"amount": "100", "normalReturnUrl": "https://shop/x"})
	if e, ok := IsAPIError(err); !ok || e.ResponseCode != "94" || !strings.Contains(e.Message, "first attempt") {
		t.Fatalf("err = %v", err)
	}
}
