package payments

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAdminHandler(t *testing.T) {
	e := newEnv(t, nil)
	do := func(method, path, ctype, accept, body string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.adm.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	good := `{"order_id":"A-1","amount":1500,"currency":"eur","success_url":"https://shop.example/ok","failure_url":"https://shop.example/ko"}`
	code, _, body := do("POST", "/v1/payments", "application/json", "", good)
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	var st Started
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Reference == "" || st.Fields["Seal"] == "" {
		t.Fatalf("start answer %s: %v", body, err)
	}
	// The same order again: its payment (200), not a second one.
	code, _, body = do("POST", "/v1/payments", "application/json", "", good)
	var again Started
	if err := json.Unmarshal([]byte(body), &again); code != 200 || err != nil || again.Reference != st.Reference || !again.Existing {
		t.Fatalf("same order again: %d %s", code, body)
	}
	code, h, body := do("POST", "/v1/payments", "application/json", "text/html,application/xhtml+xml", strings.Replace(good, "A-1", "A-2", 1))
	if code != 201 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "<form") || h.Get("X-Payment-Reference") == "" {
		t.Fatalf("html start: %d %s %s", code, h.Get("Content-Type"), body)
	}
	bad := []struct {
		name, ctype, body string
		status            int
	}{
		{"not json", "application/json", "{", 400},
		{"unknown field", "application/json", `{"order_id":"A","amount":1,"currency":"EUR","state":"accepted"}`, 400},
		{"trailing data", "application/json", good + `{}`, 400},
		{"wrong content type", "text/plain", good, 415},
		{"invalid amount", "application/json", strings.Replace(good, "1500", "-1", 1), 400},
		{"too_large", "application/json", `{"order_id":"` + strings.Repeat("x", 70000) + `"}`, 400},
	}
	for _, c := range bad {
		if code, _, body := do("POST", "/v1/payments", c.ctype, "", c.body); code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.status)
		}
	}
	// A decided payment shows its timeline with raw ids and verdicts.
	e.pay(t, &st)
	form := e.sim.decide(t, st.Reference, "00")
	e.post(t, "automatic", form)
	e.post(t, "manual", form)
	code, _, body = do("GET", "/v1/payments/"+st.Reference, "", "", "")
	var d Detail
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("get: %d %s", code, body)
	}
	if d.Payment.State != StateAccepted || len(d.Timeline) != 2 || d.Timeline[0].RawID == 0 ||
		d.Timeline[0].Verdict != VerdictDecided || d.Timeline[1].Verdict != VerdictDuplicate {
		t.Fatalf("detail %+v", d)
	}
	code, _, body = do("GET", "/v1/payments?state=accepted&limit=5", "", "", "")
	var list []Payment
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].Reference != st.Reference {
		t.Fatalf("list accepted: %d %s", code, body)
	}
	code, _, body = do("GET", "/v1/payments?state=pending", "", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 {
		t.Fatalf("list pending: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/v1/payments?state=paid":                 400,
		"/v1/payments?limit=0x10":                 400,
		"/v1/payments?limit=100000":               400,
		"/v1/payments/NOSUCHREF":                  404,
		"/v1/payments/" + strings.Repeat("A", 40): 400,
		"/v1/payments/bad%27ref":                  400,
	} {
		if code, _, body := do("GET", path, "", "", ""); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}
}
