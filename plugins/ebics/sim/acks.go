package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/acquit/acquit/internal/painfile"
)

// txReject is a transaction rejected by the bank's checks.
type txReject struct {
	pmtInf, e2e, reason, info string
}

// acknowledge validates an order's file as a bank does after reception and
// offers HAC, PSR and PTK documents for download.
func (s *Sim) acknowledge(idx int, f Faults) {
	if f.AckDelay > 0 {
		time.Sleep(f.AckDelay)
	}
	s.mu.Lock()
	o := s.orders[idx]
	s.mu.Unlock()

	var groupReason, groupInfo string
	var rejects []txReject
	// The file is read once, streaming (it may be a spooled order of any
	// size): the transactions are checked as they pass; the group-level
	// verdicts (count, sum, duplicate MsgId) come first when they apply.
	bad := map[string]bool{}
	for _, e := range f.RejectTxs {
		bad[e] = true
	}
	var r io.Reader = bytes.NewReader(o.Data)
	if o.segments != nil {
		sr, err := segmentsReader(o.segments, o.key)
		if err != nil {
			s.log.Error().Err(err).Str("order", o.OrderID).Msg("ebics sim: order data no longer decodes")
			return
		}
		defer sr.Close()
		r = bufio.NewReaderSize(sr, 256<<10)
	}
	if o.DataPath != "" {
		df, err := os.Open(o.DataPath)
		if err != nil {
			s.log.Error().Err(err).Str("order", o.OrderID).Msg("ebics sim: spooled order data unreadable")
			return
		}
		defer df.Close()
		r = bufio.NewReaderSize(df, 256<<10)
	}
	info, err := painfile.Scan(r, func(t painfile.Tx) error {
		switch {
		case t.IBAN != "" && !painfile.ValidIBAN(t.IBAN):
			rejects = append(rejects, txReject{t.PmtInfID, t.EndToEndID, "AC01", "invalid IBAN check digits"})
		case bad[t.EndToEndID]:
			rejects = append(rejects, txReject{t.PmtInfID, t.EndToEndID, "AC04", "account closed (injected)"})
		}
		return nil
	}, false)
	switch {
	case err != nil:
		groupReason, groupInfo = "FF01", "file is not a well-formed pain.001/pain.008: "+err.Error()
	case f.RejectFile:
		groupReason, groupInfo = "FF01", "file rejected (injected)"
	case info.NbOfTxs != fmt.Sprint(info.Count):
		groupReason, groupInfo = "AM18", fmt.Sprintf("NbOfTxs %s, %d transactions found", info.NbOfTxs, info.Count)
	case !sameAmount(info.CtrlSum, info.Sum):
		groupReason, groupInfo = "AM10", fmt.Sprintf("CtrlSum %s, transactions sum to %s", info.CtrlSum, info.Sum)
	}
	if err == nil && groupReason == "" {
		s.mu.Lock()
		dup := s.msgIDs[o.PartnerID+"/"+info.MsgID]
		s.msgIDs[o.PartnerID+"/"+info.MsgID] = true
		s.mu.Unlock()
		if dup {
			groupReason, groupInfo = "DU01", "duplicate MsgId "+info.MsgID
		}
	}
	if groupReason != "" {
		rejects = nil // the whole file is refused: no transaction verdicts
	}
	accepted := groupReason == ""
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[idx].Accepted = accepted
	if info != nil {
		s.orders[idx].MsgID = info.MsgID
	}
	if groupReason != "" {
		s.orders[idx].Reasons = []string{groupReason + " " + groupInfo}
	}
	for _, r := range rejects {
		s.orders[idx].Reasons = append(s.orders[idx].Reasons, r.reason+" "+r.e2e)
	}
	if f.NeverAck {
		return
	}
	now := time.Now().UTC()
	s.addDocLocked(o.PartnerID, "HAC", "pain.002.001.03", hacDoc(o, accepted, groupInfo, now))
	s.addDocLocked(o.PartnerID, "PTK", "ptk-text", ptkDoc(o, accepted, groupInfo, now))
	if info != nil {
		s.addDocLocked(o.PartnerID, "PSR", "pain.002.001.03", psrDoc(o, info, groupReason, groupInfo, rejects, now))
	}
}

func sameAmount(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && x.Cmp(y) == 0
}

func pain002(now time.Time, msgID string) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement("Document")
	root.CreateAttr("xmlns", "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03")
	rpt := root.CreateElement("CstmrPmtStsRpt")
	gh := rpt.CreateElement("GrpHdr")
	gh.CreateElement("MsgId").SetText(msgID)
	gh.CreateElement("CreDtTm").SetText(now.Format("2006-01-02T15:04:05"))
	return doc, rpt
}

// hacDoc builds a HAC customer protocol in the pain.002 form banks use:
// one OrgnlPmtInfAndSts per event (OrgnlPmtInfId = the action:
// FILE_UPLOAD, ES_VERIFICATION, ORDER_HAC_FINAL_POS/NEG), the order's keys
// in StsRsnInf/Orgtr/Id/OrgId/Othr keyed by SchmeNm/Prtry (PartnerID,
// OrderType, OrderID, UserID, TimeStamp) and the reason code in Rsn/Cd.
func hacDoc(o Order, accepted bool, info string, now time.Time) []byte {
	doc, rpt := pain002(now, "HAC"+o.OrderID+now.Format("150405"))
	og := rpt.CreateElement("OrgnlGrpInfAndSts")
	og.CreateElement("OrgnlMsgId").SetText("EBICS")
	og.CreateElement("OrgnlMsgNmId").SetText("EBICS")
	step := func(action, code, extra string) {
		pi := rpt.CreateElement("OrgnlPmtInfAndSts")
		pi.CreateElement("OrgnlPmtInfId").SetText(action)
		sr := pi.CreateElement("StsRsnInf")
		org := sr.CreateElement("Orgtr").CreateElement("Id").CreateElement("OrgId")
		for _, kv := range [][2]string{{"PartnerID", o.PartnerID}, {"OrderType", o.OrderType}, {"OrderID", o.OrderID},
			{"UserID", o.UserID}, {"TimeStamp", now.UTC().Format("2006-01-02T15:04:05.000Z")}} {
			if kv[1] == "" {
				continue
			}
			othr := org.CreateElement("Othr")
			othr.CreateElement("Id").SetText(kv[1])
			othr.CreateElement("SchmeNm").CreateElement("Prtry").SetText(kv[0])
		}
		if code != "" {
			sr.CreateElement("Rsn").CreateElement("Cd").SetText(code)
		}
		if extra != "" {
			sr.CreateElement("AddtlInf").SetText(trunc(extra, 105))
		}
	}
	step("FILE_UPLOAD", "TS01", "")
	step("ES_VERIFICATION", "DS01", "")
	if accepted {
		step("ORDER_HAC_FINAL_POS", "", "")
	} else {
		step("ORDER_HAC_FINAL_NEG", "", info)
	}
	b, _ := doc.WriteToBytes()
	return b
}

// psrDoc builds the payment status report (pain.002.001.03) at group,
// PmtInf and transaction level.
func psrDoc(o Order, info *painfile.Info, groupReason, groupInfo string, rejects []txReject, now time.Time) []byte {
	doc, rpt := pain002(now, "PSR"+o.OrderID+now.Format("150405"))
	og := rpt.CreateElement("OrgnlGrpInfAndSts")
	og.CreateElement("OrgnlMsgId").SetText(info.MsgID)
	og.CreateElement("OrgnlMsgNmId").SetText(strings.TrimPrefix(info.Namespace, "urn:iso:std:iso:20022:tech:xsd:"))
	og.CreateElement("OrgnlNbOfTxs").SetText(info.NbOfTxs)
	if info.CtrlSum != "" {
		og.CreateElement("OrgnlCtrlSum").SetText(info.CtrlSum)
	}
	switch {
	case groupReason != "":
		og.CreateElement("GrpSts").SetText("RJCT")
		sr := og.CreateElement("StsRsnInf")
		sr.CreateElement("Rsn").CreateElement("Cd").SetText(groupReason)
		sr.CreateElement("AddtlInf").SetText(trunc(groupInfo, 105))
	case int64(len(rejects)) == info.Count && len(rejects) > 0:
		og.CreateElement("GrpSts").SetText("RJCT")
	case len(rejects) > 0:
		og.CreateElement("GrpSts").SetText("PART")
	default:
		og.CreateElement("GrpSts").SetText("ACCP")
	}
	byPmt := map[string][]txReject{}
	var order []string
	for _, r := range rejects {
		if _, ok := byPmt[r.pmtInf]; !ok {
			order = append(order, r.pmtInf)
		}
		byPmt[r.pmtInf] = append(byPmt[r.pmtInf], r)
	}
	for _, p := range order {
		pe := rpt.CreateElement("OrgnlPmtInfAndSts")
		pe.CreateElement("OrgnlPmtInfId").SetText(p)
		pe.CreateElement("PmtInfSts").SetText("PART")
		for _, r := range byPmt[p] {
			te := pe.CreateElement("TxInfAndSts")
			te.CreateElement("OrgnlEndToEndId").SetText(r.e2e)
			te.CreateElement("TxSts").SetText("RJCT")
			sr := te.CreateElement("StsRsnInf")
			sr.CreateElement("Rsn").CreateElement("Cd").SetText(r.reason)
			sr.CreateElement("AddtlInf").SetText(r.info)
		}
	}
	b, _ := doc.WriteToBytes()
	return b
}

// ptkDoc builds the customer protocol as text (PTK) in the layout of an
// English-speaking bank: "date time | Order X | Type T | User U | outcome
// [code]" lines (daemon/acks profile "en").
func ptkDoc(o Order, accepted bool, info string, now time.Time) []byte {
	ts := now.UTC().Format("2006-01-02 15:04:05")
	o.OrderType, _, _ = strings.Cut(o.OrderType, ":") // FUL:pain.001.001.03 -> FUL
	var b strings.Builder
	b.WriteString("CUSTOMER PROTOCOL\n")
	fmt.Fprintf(&b, "Customer ID : %s\n", o.PartnerID)
	fmt.Fprintf(&b, "Created     : %s\n", ts)
	b.WriteString(strings.Repeat("-", 70) + "\n")
	fmt.Fprintf(&b, "%s | Order %s | Type %s | User %s | File upload successful [TS01]\n", ts, o.OrderID, o.OrderType, o.UserID)
	fmt.Fprintf(&b, "%s | Order %s | Type %s | User %s | Signature verification successful [DS01]\n", ts, o.OrderID, o.OrderType, o.UserID)
	if accepted {
		fmt.Fprintf(&b, "%s | Order %s | Type %s | User - | Order completed (positive)\n", ts, o.OrderID, o.OrderType)
	} else {
		fmt.Fprintf(&b, "%s | Order %s | Type %s | User - | Order completed (negative) %s\n", ts, o.OrderID, o.OrderType, trunc(info, 200))
	}
	b.WriteString(strings.Repeat("-", 70) + "\n")
	return []byte(b.String())
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
