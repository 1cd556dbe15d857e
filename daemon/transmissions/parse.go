package transmissions

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/acquit/acquit/daemon/acks"
	"github.com/acquit/acquit/sdk"
)

// downloadOrderTypes are order types whose HAC entries report downloads or
// key management, not files acquit sent: they are skipped, not unmatched.
var downloadOrderTypes = map[string]bool{
	"HAC": true, "PTK": true, "HAA": true, "HTD": true, "HKD": true, "HPB": true, "HPD": true, "HEV": true,
	"INI": true, "HIA": true, "H3K": true, "HCA": true, "HCS": true, "SPR": true, "HVE": true, "HVU": true,
	"HVZ": true, "HVD": true, "HVT": true, "STA": true, "VMK": true, "C52": true, "C53": true, "C54": true,
	"FDL": true, "BTD": true, "Z01": true, "Z52": true, "Z53": true, "Z54": true, "CDZ": true, "CRZ": true,
}

// parse turns a downloaded document into normalised findings.
func (s *Service) parse(bank, kind string, doc sdk.Document) ([]finding, error) {
	switch kind {
	case "psr":
		return parsePSR(doc.Content)
	case "hac":
		return parseHAC(doc.Content)
	case "ptk":
		return s.parsePTK(bank, doc.Content)
	}
	return nil, fmt.Errorf("unknown acknowledgement kind %q", kind)
}

func reasonOf(rs []acks.Reason) (code, text string) {
	for _, r := range rs {
		if code == "" {
			code = r.Key()
		}
		if t := r.Text(); t != "" {
			if text != "" {
				text += " "
			}
			text += t
		}
	}
	if text == "" && code != "" {
		if info, ok := acks.LookupReason(code); ok {
			text = info.English
		}
	}
	return code, text
}

func statusEffect(st acks.Status) Effect {
	switch {
	case st.Rejected():
		return EffectRejected
	case st == acks.StatusPART:
		return EffectPartial
	case st.Positive():
		return EffectAccepted
	case st == acks.StatusRCVD || st == acks.StatusPDNG:
		return EffectReceived
	}
	return EffectNone
}

func parsePSR(data []byte) ([]finding, error) {
	var out []finding
	_, _, err := acks.ParsePSRDownload(data, acks.Limits{}, func(entry string) acks.PSRHandler {
		var pmtPositive, pmtRejected int
		groupAt := len(out)
		return acks.PSRHandler{
			OnGroup: func(g *acks.PSRGroup) error {
				code, text := reasonOf(g.Reasons)
				groupAt = len(out)
				out = append(out, finding{Level: "group", Ref: g.OrgnlMsgId, Status: string(g.GrpSts), ReasonCode: code,
					ReasonText: text, At: g.Created, Effect: statusEffect(g.GrpSts), MsgID: g.OrgnlMsgId})
				return nil
			},
			OnPmtInf: func(g *acks.PSRGroup, p *acks.PSRPmtInf) error {
				code, text := reasonOf(p.Reasons)
				eff := EffectNone
				switch {
				case p.PmtInfSts.Rejected():
					eff = EffectRejected
					pmtRejected++
				case p.PmtInfSts.Positive():
					pmtPositive++
				}
				out = append(out, finding{Level: "pmtinf", Ref: p.OrgnlPmtInfId, Status: string(p.PmtInfSts), ReasonCode: code,
					ReasonText: text, At: g.Created, Effect: eff, MsgID: g.OrgnlMsgId, PmtInfID: p.OrgnlPmtInfId})
				// A report with no group status: all PmtInfs positive
				// means the file is accepted.
				if groupAt < len(out) && out[groupAt].Level == "group" && out[groupAt].Status == "" && pmtRejected == 0 && pmtPositive > 0 {
					out[groupAt].Effect = EffectAccepted
				}
				return nil
			},
			OnTx: func(g *acks.PSRGroup, p *acks.PSRPmtInf, tx *acks.PSRTx) error {
				eff := acks.EffectiveStatus(g, p, tx)
				if tx.TxSts == acks.StatusNone && eff.Level != acks.LevelTx {
					return nil // nothing of its own: the level above says it
				}
				code, text := reasonOf(eff.Reasons)
				e := EffectNone
				if eff.Status.Rejected() {
					e = EffectRejected
				}
				pmt := tx.OrgnlPmtInfId
				out = append(out, finding{Level: "tx", Ref: tx.OrgnlEndToEndId, Status: string(eff.Status), ReasonCode: code,
					ReasonText: text, At: g.Created, Effect: e, MsgID: g.OrgnlMsgId, PmtInfID: pmt,
					EndToEndID: tx.OrgnlEndToEndId, Amount: tx.Amount, Currency: tx.Currency})
				return nil
			},
		}
	})
	return out, err
}

func parseHAC(data []byte) ([]finding, error) {
	var out []finding
	err := acks.ParseHACFunc(bytes.NewReader(data), acks.Limits{}, func(e acks.HACEntry) error {
		ot := strings.ToUpper(e.OrderType)
		if downloadOrderTypes[ot] || e.Action == "FILE_DOWNLOAD" || (ot == "BTD") {
			return nil
		}
		eff := EffectNone
		switch {
		case e.Final && e.Positive:
			eff = EffectAccepted
		case e.Final:
			eff = EffectRejected
		case e.Action == "FILE_UPLOAD" && e.Positive:
			eff = EffectReceived
		case e.Action == "FILE_UPLOAD":
			eff = EffectRejected
		case e.Action == "ES_VERIFICATION" && e.Positive:
			eff = EffectSigOK
		}
		text := e.Text
		if text == "" && e.ReasonCode != "" {
			if info, ok := acks.LookupReason(e.ReasonCode); ok {
				text = info.English
			}
		}
		out = append(out, finding{Level: "hac", Ref: e.OrderID, Status: e.Action, ReasonCode: e.ReasonCode,
			ReasonText: text, At: e.Time, Effect: eff, OrderID: e.OrderID, PartnerID: e.PartnerID})
		return nil
	})
	return out, err
}
