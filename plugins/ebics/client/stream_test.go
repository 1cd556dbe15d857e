package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

func fileSum(t *testing.T, p string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), int64(len(b))
}

// A file that is not the one the caller registered (SHA-256 or size) is
// refused before anything reaches the bank, and so is a second upload
// under an id recorded for another file.
func TestUploadRefusesOtherFile(t *testing.T) {
	e := newEnv(t, protocol.H005, "", sim.Config{Faults: sim.Faults{NeverAck: true}}, true)
	ctx := context.Background()
	path := writePain(t, e.tmp, "MSG-SUM", 40)
	sum, size := fileSum(t, path)
	before := e.sim.Requests()
	for _, spec := range []client.UploadSpec{
		{ID: "S1", Function: "sct", Path: path, SHA256: "00" + sum[2:], Size: size},
		{ID: "S2", Function: "sct", Path: path, SHA256: sum, Size: size + 1},
	} {
		_, err := e.cl.Upload(ctx, spec)
		var fm *client.FileMismatchError
		if !errors.As(err, &fm) {
			t.Fatalf("%s: %v", spec.ID, err)
		}
	}
	if n := e.sim.Requests(); n != before {
		t.Fatalf("%d requests reached the bank", n-before)
	}
	if _, err := e.cl.Upload(ctx, client.UploadSpec{ID: "S3", Function: "sct", Path: path, SHA256: sum, Size: size}); err != nil {
		t.Fatal(err)
	}
	other := writePain(t, e.tmp, "MSG-OTHER", 41)
	osum, osize := fileSum(t, other)
	_, err := e.cl.Upload(ctx, client.UploadSpec{ID: "S3", Function: "sct", Path: other, SHA256: osum, Size: osize})
	var fm *client.FileMismatchError
	if !errors.As(err, &fm) || len(e.sim.Orders()) != 1 {
		t.Fatalf("second file under S3: %v, %d orders", err, len(e.sim.Orders()))
	}
}

// The identifiers the caller passes are recorded as given (the file is not
// parsed for them); without them, the group header is read.
func TestUploadIdentifiers(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{Faults: sim.Faults{NeverAck: true}}, true)
	ctx := context.Background()
	path := writePain(t, e.tmp, "MSG-IDS", 60)
	res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "I1", Function: "sct", Path: path,
		Identifiers: map[string]string{"msg_id": "FROM-CALLER", "nb_of_txs": "60", "ctrl_sum": "1.00", "other": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Details["msg_id"] != "FROM-CALLER" || res.Details["ctrl_sum"] != "1.00" || res.Details["other"] != "" {
		t.Fatalf("details %v", res.Details)
	}
	res, err = e.cl.Upload(ctx, client.UploadSpec{ID: "I2", Function: "sct", Path: writePain(t, e.tmp, "MSG-IDS2", 60)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Details["msg_id"] != "MSG-IDS2" || res.Details["nb_of_txs"] != "60" || res.Details["ctrl_sum"] == "" {
		t.Fatalf("details %v", res.Details)
	}
}

// A bank spooling uploads to disk (sim.Config.SpoolDir) records the same
// order data, byte for byte, and still verifies the ES over all of it: with
// a digest rule other than the client's (raw vs CR/LF stripped) the order
// is refused.
func TestUploadToSpoolingBank(t *testing.T) {
	for _, raw := range []bool{false, true} {
		e := newEnv(t, protocol.H005, "", sim.Config{SpoolDir: t.TempDir(), ESRawDigest: raw, MaxSegmentSize: 1 << 20}, true)
		e.bank.Profile.SegmentSize = 4000
		e.cl = e.newClient(t)
		ctx := context.Background()
		path := writePain(t, e.tmp, "MSG-SPOOL", 300)
		res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "P1", Function: "sct", Path: path})
		if raw {
			if !protocol.HasCode(err, protocol.CodeSignatureFailed) || len(e.sim.Orders()) != 0 {
				t.Fatalf("raw digest at the bank: %v, %d orders", err, len(e.sim.Orders()))
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.Segments < 3 {
			t.Fatalf("%d segments", res.Segments)
		}
		want, _ := os.ReadFile(path)
		var o sim.Order
		for i := 0; i < 500; i++ {
			if o = e.sim.Orders()[0]; o.MsgID != "" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		got, err := os.ReadFile(o.DataPath)
		if err != nil || o.Data != nil || o.Size != int64(len(want)) || !bytes.Equal(got, want) || !o.Accepted || o.MsgID != "MSG-SPOOL" {
			t.Fatalf("order %+v (read %v)", o, err)
		}
	}
}
