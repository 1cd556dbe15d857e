package e2e

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/internal/demo"
)

// TestEbicsDocumentTooLarge: a document over transmissions.max_document_size
// between two small ones, from the EBICS simulator (its own process)
// through the real EBICS plugin process. The plugin reports it as too
// large (sdk.Document.TooLarge) instead of failing the download; the
// daemon counts it (acquit_acks_rejected_input_total{reason="too_large"}),
// logs it with its order type, size and the limit, records a bodiless raw
// input with the verdict too_large, and receipts it, so the document after
// it is fetched and stored in the same run. Before, the fetch job failed
// on it and every later document of that kind waited behind it.
func TestEbicsDocumentTooLarge(t *testing.T) {
	t.Parallel()
	// Small download segments: the document over the limit spans several,
	// and the limit is reached before its last one. The bank takes the
	// receipt only after the last segment (the client fetches the rest
	// without decoding it).
	url, ah, eh := startSimProcess(t, "-download-segment-size", "16384")
	h := psrHarness(t, url, ah, eh)
	h.Template().MaxDocumentSize = "1MiB"
	if err := h.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := demo.Onboard(ctx(t), h, ebicsBank); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(url, "/ebics")
	docs := []struct {
		msgID  string
		n      int // transactions, about 330 bytes each
		stored bool
	}{
		{"SMALL-BEFORE", 10, true},
		{"OVER-LIMIT", 10000, false}, // about 3.3 MB, limit 1 MiB
		{"SMALL-AFTER", 20, true},
	}
	for _, d := range docs {
		resp, err := http.Post(base+"/admin/documents?partner="+ebicsPartner+"&kind=PSR&format=pain.002.001.03", "application/xml",
			&bigPSR{msgID: d.msgID, n: d.n})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("offer %s: %d %s", d.msgID, resp.StatusCode, b)
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out map[string]string
	if _, err := h.Client().Do(c, "POST", "/v1/banks/"+ebicsBank+"/fetch-acks?kinds=psr", nil, &out); err != nil {
		t.Fatalf("fetch-acks: %v (the run must not fail on a document over the limit)", err)
	}

	// Every document receipted: the one over the limit too (it would
	// otherwise be offered first again and again).
	bank := bankDocuments(t, base)
	if len(bank) != len(docs) {
		t.Fatalf("bank's documents: %+v", bank)
	}
	for i, d := range bank {
		if !d.Delivered {
			t.Errorf("document %d (%s, %d bytes) not receipted; fetch said %v", i, docs[i].msgID, d.Bytes, out)
		}
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.Dir, "acquit.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, d := range docs {
		t.Run(d.msgID, func(t *testing.T) {
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM acks a JOIN raw_inputs r ON r.id = a.raw_id
				JOIN raw_body_chunks c ON c.body_id = r.body_id AND c.seq = 1 WHERE a.kind = 'psr' AND INSTR(c.data, ?) > 0`,
				"<MsgId>PSR-"+d.msgID+"</MsgId>").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[d.stored]; n != want {
				t.Fatalf("%d acknowledgements stored with message PSR-%s, want %d", n, d.msgID, want)
			}
		})
	}
	var refusals int
	var headers, msg string
	var bodyLen, chunked int64
	if err := db.QueryRow(`SELECT COUNT(*), MAX(r.headers), MAX(v.message), MAX(LENGTH(r.body)), MAX(r.chunked_size) FROM raw_inputs r
		JOIN raw_verdicts v ON v.raw_id = r.id WHERE v.code = 'too_large'`).Scan(&refusals, &headers, &msg, &bodyLen, &chunked); err != nil {
		t.Fatal(err)
	}
	if refusals != 1 || bodyLen != 0 || chunked != -1 || !strings.Contains(headers, `"max_document_size":["1048576"]`) ||
		!headerOrderType.MatchString(headers) || !strings.Contains(msg, "fetch it again") {
		t.Fatalf("refusal record: %d rows, body %d bytes, chunked %d, headers %s, message %q", refusals, bodyLen, chunked, headers, msg)
	}
	if !strings.Contains(out[ebicsBank], "1 too large") && !strings.Contains(strings.Join(mapValues(out), " "), "1 too large") {
		t.Errorf("fetch result %v does not report the refusal", out)
	}
	if v := metricValue(scrape(t, h), "acquit_acks_rejected_input_total", `reason="too_large"`); v != 1 {
		t.Errorf(`acquit_acks_rejected_input_total{reason="too_large"} = %v, want 1`, v)
	}
	logs, err := os.ReadFile(filepath.Join(h.Dir, "acquit.log"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, "over max_document_size") && logOrderType.MatchString(line) &&
			strings.Contains(line, `"limit":1048576`) && strings.Contains(line, `"size_over":1048576`) && strings.Contains(line, `"reason":"too_large"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no structured refusal log line (order_type, size_over, limit, reason) in acquit.log")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// The refusal names the order type of the document (three letters and
// digits: HAC, PTK, C52...), in the raw input's headers and in the log.
var (
	headerOrderType = regexp.MustCompile(`"order_type":\["[A-Z0-9]{3}"\]`)
	logOrderType    = regexp.MustCompile(`"order_type":"[A-Z0-9]{3}"`)
)
