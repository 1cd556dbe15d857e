package transmissions

import (
	"fmt"
	"io"
	"strings"

	"github.com/acquit/acquit/daemon/acks"
)

// downloadOrderTypes are order types whose HAC/PTK entries report downloads
// or key management, not files acquit sent: they are skipped, not unmatched.
var downloadOrderTypes = map[string]bool{
	"HAC": true, "PTK": true, "HAA": true, "HTD": true, "HKD": true, "HPB": true, "HPD": true, "HEV": true,
	"INI": true, "HIA": true, "H3K": true, "HCA": true, "HCS": true, "SPR": true, "HVE": true, "HVU": true,
	"HVZ": true, "HVD": true, "HVT": true, "STA": true, "VMK": true, "C52": true, "C53": true, "C54": true,
	"FDL": true, "BTD": true, "Z01": true, "Z52": true, "Z53": true, "Z54": true, "CDZ": true, "CRZ": true,
}

// parse turns a downloaded document, read through ra (size bytes: its
// spool file, or its content), into findings with daemon/acks'
// ParseEntriesAt (PSR, HAC and PTK flattened alike, ZIP containers opened,
// a HAC delivered as PSR recognised), keeping what matters for tracking.
// The document is streamed: memory grows with the entries kept (rejected
// transactions, at most acks.Limits.MaxCollect), not with its size.
func (s *Service) parse(bank, kind string, ra io.ReaderAt, size int64) ([]finding, error) {
	o := acks.ParseOptions{Kind: kind, Ref: s.d.Now(), Limits: acks.Limits{MaxBytes: max(s.maxDoc, acks.DefaultLimits.MaxBytes)}}
	if kind == "ptk" {
		name := s.banks[bank].PTKProfile
		if name == "" {
			name = "de"
		}
		prof, err := acks.PTKProfileByName(name)
		if err != nil {
			return nil, fmt.Errorf("ptk profile %q: %w", name, err)
		}
		o.PTK = prof
	}
	var out []finding
	groupAt := map[string]int{} // document -> index of its group finding
	pmtPositive, pmtRejected := map[string]int{}, map[string]int{}
	// Each entry becomes a finding as it is parsed: one copy is held, not
	// the parser's entries and the findings both.
	o.OnEntry = func(e acks.Entry) error {
		if e.Level == "hac" || e.Level == "ptk" {
			if downloadOrderTypes[strings.ToUpper(e.OrderType)] || e.Ref == "FILE_DOWNLOAD" {
				return nil
			}
		}
		f := finding{Level: e.Level, Ref: e.Ref, Status: string(e.Status), ReasonCode: e.ReasonCode, ReasonText: e.ReasonText,
			At: e.At, Effect: effectOf(e), MsgID: e.MsgID, PmtInfID: e.PmtInfID, EndToEndID: e.EndToEndID,
			OrderID: e.OrderID, PartnerID: e.PartnerID, Amount: e.Amount, Currency: e.Currency}
		if f.ReasonText == "" && f.ReasonCode != "" {
			if info, ok := acks.LookupReason(f.ReasonCode); ok {
				f.ReasonText = info.English
			}
		}
		switch e.Level {
		case "hac", "ptk":
			// Shown as: order id, what happened (HAC action or PTK status).
			f.Ref, f.Status = e.OrderID, strings.TrimSpace(e.Ref+" "+string(e.Status))
			if e.Level == "hac" {
				f.Status = e.Ref
			}
		case "group":
			groupAt[e.Doc] = len(out)
		case "pmtinf":
			switch {
			case e.Status.Rejected():
				pmtRejected[e.Doc]++
			case e.Status.Positive():
				pmtPositive[e.Doc]++
			}
		}
		out = append(out, f)
		return nil
	}
	p, err := acks.ParseEntriesAt(ra, size, o)
	if err != nil {
		return nil, err
	}
	// A report with no group status whose PmtInfs are all accepted accepts
	// the file.
	for doc, i := range groupAt {
		if out[i].Status == "" && pmtRejected[doc] == 0 && pmtPositive[doc] > 0 {
			out[i].Effect = EffectAccepted
		}
	}
	for _, l := range p.Unmatched {
		out = append(out, finding{Level: "ptk-unmatched", Ref: fmt.Sprintf("line %d", l.Line), ReasonText: l.Text})
	}
	return out, nil
}

// effectOf says what an entry does to its transmission. For pmtinf and tx
// entries only a rejection counts (applyTo reads transaction statuses);
// a negative HAC or PTK step that is not final leaves the status open
// (PDNG) until the final entry comes.
func effectOf(e acks.Entry) Effect {
	switch {
	case e.Status.Rejected():
		return EffectRejected
	case e.Status == acks.StatusPART:
		return EffectPartial
	case e.Status.Positive():
		return EffectAccepted
	case e.Status == acks.StatusPDNG && (e.Level == "hac" || e.Level == "ptk"):
		return EffectNone
	case e.Stage == acks.StageSignatureVerified:
		return EffectSigOK
	case e.Stage >= acks.StageReceived:
		return EffectReceived
	}
	return EffectNone
}
