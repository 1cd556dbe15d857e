package transmissions

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestListRefusesUnknownState: a typo in the state filter is the caller's
// error (400 naming the valid states), not an empty list.
func TestListRefusesUnknownState(t *testing.T) {
	f := newFixture(t)
	f.submitAndSend(t)
	h := f.svc.AdminHandler("test", 1<<20)
	cases := []struct {
		query string
		code  int
		count int
	}{
		{"", http.StatusOK, 1},
		{"?state=submitted", http.StatusOK, 1},
		{"?state=accepted", http.StatusOK, 0},
		{"?state=acepted", http.StatusBadRequest, -1},
		{"?state=SUBMITTED", http.StatusBadRequest, -1},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/transmissions"+c.query, nil))
			if rec.Code != c.code {
				t.Fatalf("GET %s: %d %s, want %d", c.query, rec.Code, rec.Body, c.code)
			}
			if c.count < 0 {
				if !strings.Contains(rec.Body.String(), "partially_accepted") {
					t.Fatalf("error does not list the valid states: %s", rec.Body)
				}
				return
			}
			var ts []Transmission
			if err := json.Unmarshal(rec.Body.Bytes(), &ts); err != nil {
				t.Fatal(err)
			}
			if len(ts) != c.count {
				t.Fatalf("GET %s: %d transmissions, want %d", c.query, len(ts), c.count)
			}
			for _, x := range ts {
				if x.Currency != "EUR" { // every transaction of pain001_3tx.xml is in EUR
					t.Fatalf("GET %s: currency %q, want EUR", c.query, x.Currency)
				}
			}
		})
	}
}
