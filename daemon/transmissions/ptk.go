package transmissions

import (
	"fmt"

	"github.com/acquit/acquit/daemon/acks"
)

// parsePTK reads a PTK text protocol with the bank's line profile (default
// "de"). Every entry is kept; lines no pattern matches come back as
// findings of level "ptk-unmatched" so they are stored and reported, never
// dropped.
func (s *Service) parsePTK(bank string, data []byte) ([]finding, error) {
	name := s.banks[bank].PTKProfile
	if name == "" {
		name = "de"
	}
	prof, err := acks.PTKProfileByName(name)
	if err != nil {
		return nil, fmt.Errorf("ptk profile %q: %w", name, err)
	}
	res, err := acks.ParsePTK(data, prof, s.d.Now(), acks.Limits{})
	if err != nil {
		return nil, err
	}
	var out []finding
	for _, e := range res.Entries {
		if downloadOrderTypes[e.OrderType] {
			continue
		}
		eff := EffectNone
		switch {
		case e.Outcome == acks.PTKNegative && e.Final:
			eff = EffectRejected
		case e.Outcome == acks.PTKNegative:
			// A failed step (e.g. one signature of several): recorded; the
			// final line decides.
		case e.Final && e.Outcome == acks.PTKPositive:
			eff = EffectAccepted
		case e.Outcome == acks.PTKPositive:
			eff = EffectReceived
		}
		out = append(out, finding{Level: "ptk", Ref: e.OrderID, Status: string(e.Outcome), ReasonCode: e.Code, ReasonText: e.Raw,
			At: e.Time, Effect: eff, OrderID: e.OrderID, PartnerID: e.PartnerID})
	}
	for _, l := range res.Unmatched {
		out = append(out, finding{Level: "ptk-unmatched", Ref: fmt.Sprintf("line %d", l.Line), ReasonText: l.Text})
	}
	return out, nil
}
