package acks

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
)

// psrGenerator streams a pain.002.001.03 with n transactions (every 50th
// rejected with a reason) without ever holding it whole.
type psrGenerator struct {
	n, i  int
	buf   bytes.Buffer
	tmp   []byte
	state int // 0 header, 1 transactions, 2 trailer, 3 done
}

func newPSRGenerator(n int) *psrGenerator { return &psrGenerator{n: n} }

func (g *psrGenerator) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.state < 3 {
		switch g.state {
		case 0:
			fmt.Fprintf(&g.buf, `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>BENCH-PSR</MsgId><CreDtTm>2026-11-06T10:00:00</CreDtTm><InitgPty><Nm>Bench Bank</Nm></InitgPty></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>BENCH-MSG</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId><OrgnlNbOfTxs>%d</OrgnlNbOfTxs><GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>
<OrgnlPmtInfAndSts><OrgnlPmtInfId>BENCH-PMT</OrgnlPmtInfId><PmtInfSts>PART</PmtInfSts>
`, g.n)
			g.state = 1
		case 1:
			if g.i >= g.n {
				g.state = 2
				continue
			}
			sts, rsn := "ACCP", ""
			if g.i%50 == 0 {
				sts, rsn = "RJCT", `<StsRsnInf><Rsn><Cd>AC01</Cd></Rsn><AddtlInf>Invalid IBAN of the creditor</AddtlInf></StsRsnInf>`
			}
			// Appended by hand, not with fmt: the generator's own cost
			// (allocations, CPU) is counted in the benchmark.
			b := g.tmp[:0]
			b = append(b, "<TxInfAndSts><OrgnlInstrId>INSTR-"...)
			b = appendPadded(b, g.i, 7)
			b = append(b, "</OrgnlInstrId><OrgnlEndToEndId>E2E-"...)
			b = appendPadded(b, g.i, 7)
			b = append(b, "</OrgnlEndToEndId><TxSts>"...)
			b = append(b, sts...)
			b = append(b, "</TxSts>"...)
			b = append(b, rsn...)
			b = append(b, `<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">`...)
			b = strconv.AppendInt(b, int64(10+g.i%9000), 10)
			b = append(b, '.')
			b = appendPadded(b, g.i%100, 2)
			b = append(b, "</InstdAmt></Amt><ReqdExctnDt>2026-11-07</ReqdExctnDt><Cdtr><Nm>Creditor number "...)
			b = strconv.AppendInt(b, int64(g.i), 10)
			b = append(b, "</Nm></Cdtr><CdtrAcct><Id><IBAN>DE89370400440532"...)
			b = appendPadded(b, g.i%1000000, 6)
			b = append(b, "</IBAN></Id></CdtrAcct></OrgnlTxRef></TxInfAndSts>\n"...)
			g.buf.Write(b)
			g.tmp = b
			g.i++
		case 2:
			g.buf.WriteString("</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>\n")
			g.state = 3
		}
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	return g.buf.Read(p)
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapObjects() uint64 {
	metrics.Read(heapSample)
	return heapSample[0].Value.Uint64()
}

// parseMeasured parses r, sampling the heap every 1,000 transactions, and
// returns the number of transactions, the rejected ones and the peak heap
// growth over the baseline taken after a GC.
func parseMeasured(tb testing.TB, r io.Reader) (txs, rejected int, peak uint64) {
	runtime.GC()
	base := heapObjects()
	_, err := ParsePSR(r, Limits{}, PSRHandler{OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
		txs++
		if EffectiveStatus(g, p, tx).Status == StatusRJCT {
			rejected++
		}
		if txs%1000 == 0 {
			if h := heapObjects(); h > base && h-base > peak {
				peak = h - base
			}
		}
		return nil
	}})
	if err != nil {
		tb.Fatal(err)
	}
	return txs, rejected, peak
}

// TestParsePSRConstantMemory streams 100,000 transactions: the heap never
// grows by more than a fraction of the document size (about 45 MB).
func TestParsePSRConstantMemory(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	txs, rejected, peak := parseMeasured(t, newPSRGenerator(n))
	if txs != n || rejected != n/50 {
		t.Fatalf("%d transactions, %d rejected", txs, rejected)
	}
	if peak > 8<<20 {
		t.Errorf("heap grew by %d MB while streaming", peak>>20)
	}
	t.Logf("%d transactions, peak heap growth %.1f MB", txs, float64(peak)/(1<<20))
}

// BenchmarkParsePSR100k parses a generated 100,000-transaction pain.002
// (about 34 MB). "inmemory" reads it from a byte slice (parser throughput;
// the 34 MB document is live, so the GC lets garbage grow to about its size
// before collecting); "streamed" reads it from a generator that never holds
// it (the parser's own memory). Peak memory is the largest growth of
// /memory/classes/heap/objects:bytes (runtime/metrics) over the post-GC
// baseline, sampled every 1,000 transactions. MB/cpu-s divides the bytes
// by the process CPU time (getrusage), which other load disturbs less than
// the wall-clock MB/s.
func BenchmarkParsePSR100k(b *testing.B) {
	size, err := io.Copy(io.Discard, newPSRGenerator(100_000))
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, open func() io.Reader) {
		b.SetBytes(size)
		b.ReportAllocs()
		var peak uint64
		b.ResetTimer()
		cpu0 := processCPU()
		for i := 0; i < b.N; i++ {
			txs, _, p := parseMeasured(b, open())
			if txs != 100_000 {
				b.Fatalf("%d transactions", txs)
			}
			if p > peak {
				peak = p
			}
		}
		if cpu := processCPU() - cpu0; cpu > 0 {
			// CPU seconds (all threads, GC included): less sensitive than
			// wall time to other load on the machine.
			b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(size)/(1<<20), "doc-MB")
	}
	b.Run("streamed", func(b *testing.B) { run(b, func() io.Reader { return newPSRGenerator(100_000) }) })
	b.Run("inmemory", func(b *testing.B) {
		doc, err := io.ReadAll(newPSRGenerator(100_000))
		if err != nil {
			b.Fatal(err)
		}
		run(b, func() io.Reader { return bytes.NewReader(doc) })
	})
}
