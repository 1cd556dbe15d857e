package painfile

import (
	"bufio"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"strconv"
	"time"
)

// GenOptions describes a synthetic pain.001.001.03 credit-transfer file, for
// the demo, tests and benchmarks.
type GenOptions struct {
	MsgID    string
	N        int    // number of transactions
	PerPmt   int    // transactions per PmtInf (default 1000)
	Seed     uint64 // amounts and IBANs derive from it
	Debtor   string
	DebtorIB string // debtor IBAN (default a valid French IBAN)
	Date     time.Time
}

// IBAN builds a valid IBAN for country from a basic bank account number by
// computing the ISO 7064 mod 97-10 check digits.
func IBAN(country, bban string) string {
	rearranged := bban + country + "00"
	var digits []byte
	for _, c := range rearranged {
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, byte(c))
		case c >= 'A' && c <= 'Z':
			digits = append(digits, []byte(strconv.Itoa(int(c-'A'+10)))...)
		}
	}
	n, _ := new(big.Int).SetString(string(digits), 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("%s%02d%s", country, check, bban)
}

// Generate writes a pain.001.001.03 document and returns its control sum.
func Generate(w io.Writer, o GenOptions) (string, error) {
	if o.N <= 0 {
		return "", fmt.Errorf("painfile: N must be positive")
	}
	if o.PerPmt <= 0 {
		o.PerPmt = 1000
	}
	if o.Debtor == "" {
		o.Debtor = "ACME SAS"
	}
	if o.DebtorIB == "" {
		o.DebtorIB = IBAN("FR", "30006000011234567890189")
	}
	if o.Date.IsZero() {
		o.Date = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	cents := make([]int64, o.N)
	var total int64
	for i := range cents {
		cents[i] = 100 + rng.Int64N(500000)
		total += cents[i]
	}
	amt := func(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <CstmrCdtTrfInitn>
    <GrpHdr>
      <MsgId>%s</MsgId>
      <CreDtTm>%s</CreDtTm>
      <NbOfTxs>%d</NbOfTxs>
      <CtrlSum>%s</CtrlSum>
      <InitgPty><Nm>%s</Nm></InitgPty>
    </GrpHdr>
`, o.MsgID, o.Date.Format("2006-01-02T15:04:05"), o.N, amt(total), o.Debtor)
	for start := 0; start < o.N; start += o.PerPmt {
		end := min(start+o.PerPmt, o.N)
		var sub int64
		for _, c := range cents[start:end] {
			sub += c
		}
		fmt.Fprintf(bw, `    <PmtInf>
      <PmtInfId>%s-P%d</PmtInfId>
      <PmtMtd>TRF</PmtMtd>
      <NbOfTxs>%d</NbOfTxs>
      <CtrlSum>%s</CtrlSum>
      <PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>
      <ReqdExctnDt>%s</ReqdExctnDt>
      <Dbtr><Nm>%s</Nm></Dbtr>
      <DbtrAcct><Id><IBAN>%s</IBAN></Id></DbtrAcct>
      <DbtrAgt><FinInstnId><BIC>BNPAFRPPXXX</BIC></FinInstnId></DbtrAgt>
      <ChrgBr>SLEV</ChrgBr>
`, o.MsgID, start/o.PerPmt+1, end-start, amt(sub), o.Date.Format("2006-01-02"), o.Debtor, o.DebtorIB)
		for i := start; i < end; i++ {
			iban := IBAN("DE", fmt.Sprintf("37040044%010d", rng.Int64N(9_999_999_999)))
			fmt.Fprintf(bw, `      <CdtTrfTxInf>
        <PmtId><InstrId>%s-I%d</InstrId><EndToEndId>%s-E%d</EndToEndId></PmtId>
        <Amt><InstdAmt Ccy="EUR">%s</InstdAmt></Amt>
        <CdtrAgt><FinInstnId><BIC>COBADEFFXXX</BIC></FinInstnId></CdtrAgt>
        <Cdtr><Nm>Supplier %d</Nm></Cdtr>
        <CdtrAcct><Id><IBAN>%s</IBAN></Id></CdtrAcct>
        <RmtInf><Ustrd>Invoice %d</Ustrd></RmtInf>
      </CdtTrfTxInf>
`, o.MsgID, i+1, o.MsgID, i+1, amt(cents[i]), i+1, iban, 100000+i)
		}
		fmt.Fprint(bw, "    </PmtInf>\n")
	}
	fmt.Fprint(bw, "  </CstmrCdtTrfInitn>\n</Document>\n")
	return amt(total), bw.Flush()
}

// ValidIBAN checks an IBAN's shape and mod 97 check digits.
func ValidIBAN(s string) bool {
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	for i, c := range s {
		switch {
		case i < 2 && (c < 'A' || c > 'Z'):
			return false
		case i >= 2 && i < 4 && (c < '0' || c > '9'):
			return false
		case !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z'):
			return false
		}
	}
	return IBAN(s[:2], s[4:]) == s
}
