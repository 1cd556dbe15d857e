package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// psrDoc is a pain.002 of n transactions (about 200 bytes each).
func psrDoc(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>DL</MsgId><CreDtTm>2026-11-06T10:00:00</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>M</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId><GrpSts>ACCP</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>P</OrgnlPmtInfId>`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "<TxInfAndSts><OrgnlEndToEndId>E2E-%08d</OrgnlEndToEndId><TxSts>ACCP</TxSts></TxInfAndSts>\n", i)
	}
	b.WriteString(`</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>`)
	return b.Bytes()
}

// DownloadFile decodes a document of many segments into a file of its
// own, byte for byte, with its size and digest; the bank delivers it only
// once the receipt is sent.
func TestDownloadFile(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{DownloadSegmentSize: 4096}, true)
	doc := psrDoc(20000)
	e.sim.AddDocument("PARTNER1", "PSR", "pain.002.001.03", doc)
	dir := t.TempDir()
	d, err := e.cl.DownloadFile(context.Background(), "psr", time.Time{}, time.Time{}, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	if !bytes.Equal(got, doc) || d.Size != int64(len(doc)) || d.SHA256 != hex.EncodeToString(sum[:]) || d.Content != nil {
		t.Fatalf("file %d bytes (equal %v), size %d, sha %s", len(got), bytes.Equal(got, doc), d.Size, d.SHA256)
	}
	if d.Segments < 10 {
		t.Fatalf("only %d segments: the test wants many", d.Segments)
	}
	if e.sim.Docs()[0].Delivered {
		t.Fatal("delivered before the receipt")
	}
	if err := e.cl.Receipt(context.Background(), d.TransactionID, true); err != nil {
		t.Fatal(err)
	}
	if !e.sim.Docs()[0].Delivered {
		t.Fatal("not delivered after the receipt")
	}
}

// A document growing past the limit stops the download: an error, no file
// left, the document still at the bank.
func TestDownloadFileOverLimit(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{DownloadSegmentSize: 4096}, true)
	doc := psrDoc(5000)
	e.sim.AddDocument("PARTNER1", "PSR", "pain.002.001.03", doc)
	dir := t.TempDir()
	_, err := e.cl.DownloadFile(context.Background(), "psr", time.Time{}, time.Time{}, dir, int64(len(doc)-1))
	if !errors.Is(err, protocol.ErrInflateLimit) {
		t.Fatalf("error %v, want ErrInflateLimit", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
	if e.sim.Docs()[0].Delivered {
		t.Fatal("delivered")
	}
	e.sim.ExpireTransactions()
	d, err := e.cl.DownloadFile(context.Background(), "psr", time.Time{}, time.Time{}, dir, int64(len(doc)))
	if err != nil || d.Size != int64(len(doc)) {
		t.Fatalf("at the limit: %+v %v", d, err)
	}
}
