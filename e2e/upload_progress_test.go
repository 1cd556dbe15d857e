package e2e

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
)

// TestUploadProgressStages: POST /v1/transmissions?progress=ndjson against
// a real daemon and the EBICS simulator reports the stages in order
// (recorded, encrypting, sending) in bytes of the original file: the
// sending lines grow to the file's size, never past it, whatever the
// encrypted segments' size (issue 11 item 4: the bar counted encrypted
// bytes only, after a long silence).
func TestUploadProgressStages(t *testing.T) {
	h, _, _ := startOnboarded(t, "@every 1h")
	path, _, err := demo.GenerateFile(filepath.Join(h.Dir, "files"), "E2E-PROGRESS", 3000, 7)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q := url.Values{"bank": {ebicsBank}, "name": {filepath.Base(path)}, "wait": {"true"}, "progress": {"ndjson"}}
	resp, err := h.Client().Stream(ctx(t), "POST", "/v1/transmissions?"+q.Encode(), "application/xml", f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stages []string
	var sending []transmissions.UploadProgress
	var final struct {
		Transmission transmissions.Transmission `json:"transmission"`
		Error        string                     `json:"error"`
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var p transmissions.UploadProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil || p.Stage == "" {
			if err := json.Unmarshal(sc.Bytes(), &final); err != nil {
				t.Fatalf("line %q: %v", sc.Bytes(), err)
			}
			continue
		}
		if p.Size != fi.Size() {
			t.Errorf("%s: size %d, want the file's %d", p.Stage, p.Size, fi.Size())
		}
		if p.Bytes > p.Size || p.Bytes < 0 {
			t.Errorf("%s: bytes %d outside 0..%d", p.Stage, p.Bytes, p.Size)
		}
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
		if p.Stage == "sending" {
			if n := len(sending); n > 0 && p.Bytes < sending[n-1].Bytes {
				t.Errorf("sending went back from %d to %d bytes", sending[n-1].Bytes, p.Bytes)
			}
			sending = append(sending, p)
		}
	}
	if final.Error != "" || final.Transmission.State != transmissions.StateSubmitted {
		t.Fatalf("final: state %q, error %q", final.Transmission.State, final.Error)
	}
	if want := []string{"recorded", "encrypting", "sending"}; !slices.Equal(stages, want) {
		t.Fatalf("stages %v, want %v", stages, want)
	}
	last := sending[len(sending)-1]
	if last.Bytes != fi.Size() || last.Sent != last.Total {
		t.Errorf("last sending line %+v: want all %d bytes of the file", last, fi.Size())
	}
	t.Logf("file %d bytes; %d sending lines; encrypted total %d bytes", fi.Size(), len(sending), last.Total)
}
