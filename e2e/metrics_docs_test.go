package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
)

// scrape returns the /metrics text of the harness's daemon.
func scrape(t *testing.T, h *demo.Harness) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+h.AdminAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

var metricFamily = regexp.MustCompile(`(?m)^# TYPE (acquit_[a-z0-9_]+) `)

// checkMetricsDocumented fails for every acquit_* family of the scrape that
// docs/operations.md does not name.
func checkMetricsDocumented(t *testing.T, text string) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range metricFamily.FindAllStringSubmatch(text, -1) {
		names = append(names, m[1])
		if !regexp.MustCompile(`\b` + m[1] + `\b`).Match(doc) {
			t.Errorf("metric %s is exported but not documented in docs/operations.md", m[1])
		}
	}
	return names
}

// TestMetricsStoreGaugesAndDocs runs a daemon against the EBICS simulator:
// a submitted file shows in acquit_transmissions_awaiting_ack (count and
// age of the oldest), a fetch-acks run sets
// acquit_schedule_last_success_timestamp_seconds, acquit_payments has its
// states, and every acquit_* family scraped is documented in
// docs/operations.md.
func TestMetricsStoreGaugesAndDocs(t *testing.T) {
	h, _, _ := startOnboarded(t, "@every 1h")
	path, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-METRICS", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := demo.Upload(ctx(t), h, ebicsBank, path)
	if err != nil {
		t.Fatal(err)
	}
	if tr.State != transmissions.StateSubmitted {
		t.Fatalf("state %s after upload", tr.State)
	}
	time.Sleep(1100 * time.Millisecond)
	text := scrape(t, h)
	if v := metricValue(text, "acquit_transmissions_awaiting_ack", `bank="`+ebicsBank+`"`); v != 1 {
		t.Errorf("acquit_transmissions_awaiting_ack{bank=%q} = %v, want 1", ebicsBank, v)
	}
	if v := metricValue(text, "acquit_transmissions_awaiting_ack_oldest_seconds", `bank="`+ebicsBank+`"`); v < 1 || v > 600 {
		t.Errorf("acquit_transmissions_awaiting_ack_oldest_seconds = %v, want the upload's age (>= 1s)", v)
	}
	if !strings.Contains(text, `acquit_payments{state="pending"} 0`) {
		t.Errorf("acquit_payments{state=\"pending\"} 0 not in the scrape")
	}
	if strings.Contains(text, "acquit_schedule_last_success_timestamp_seconds{") {
		t.Errorf("a schedule has a last success before any run")
	}
	before := time.Now()
	if _, err := h.Client().Do(ctx(t), "POST", "/v1/schedules/fetch-acks/run", nil, nil); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, h)
	if v := metricValue(text, "acquit_schedule_last_success_timestamp_seconds", `schedule="fetch-acks"`); v < float64(before.Unix()) || v > float64(time.Now().Unix()+1) {
		t.Errorf("acquit_schedule_last_success_timestamp_seconds{schedule=\"fetch-acks\"} = %v, want the run's end (after %d)", v, before.Unix())
	}
	names := checkMetricsDocumented(t, text)
	for _, want := range []string{"acquit_payments", "acquit_transmissions_awaiting_ack", "acquit_schedule_last_success_timestamp_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not scraped", want)
		}
	}
	t.Logf("%d acquit_* families scraped, all documented", len(names))
}
