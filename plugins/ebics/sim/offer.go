package sim

// What the bank offers a subscriber: order types (HAA), partner and
// subscriber data (HTD, HKD).

import (
	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// OrderTypes lists the order types the simulator offers (HAA, 2.5).
func (s *Sim) orderTypes() []string {
	if s.cfg.OrderTypes != nil {
		return s.cfg.OrderTypes
	}
	return []string{"FUL", "FDL", "CCT", "CDD", "HAC", "PTK", "Z01", "C53", "STA", "HAA", "HTD", "HKD"}
}

// offers reports whether the order type is enabled (2.5: OrderTypes when
// configured; BTU/BTD and the admin types always in 3.0).
func (s *Sim) offers(v protocol.Version, ot string) bool {
	if v == protocol.H005 || s.cfg.OrderTypes == nil {
		return true
	}
	for _, o := range s.cfg.OrderTypes {
		if o == ot {
			return true
		}
	}
	return false
}

var uploadTypes = map[string]bool{"FUL": true, "CCT": true, "CDD": true, "CDB": true, "XE2": true, "XE3": true, "CIP": true, "BTU": true}

// partnerData is what HTD/HKD tell a subscriber: the orders offered to the
// partner, and the subscriber's permissions (all of them).
func (s *Sim) partnerData(v protocol.Version, sub *subscriber) protocol.PartnerData {
	var orders []protocol.OrderInfo
	if v == protocol.H004 {
		for _, ot := range s.orderTypes() {
			tt := "Download"
			if uploadTypes[ot] {
				tt = "Upload"
			}
			orders = append(orders, protocol.OrderInfo{OrderType: ot, TransferType: tt})
		}
	} else {
		for _, svc := range s.services() {
			ot := "BTD"
			if svc.ServiceName == "SCT" || svc.ServiceName == "SDD" {
				ot = "BTU"
			}
			orders = append(orders, protocol.OrderInfo{OrderType: ot, Service: svc})
		}
		for _, ot := range []string{"HAC", "PTK", "HAA", "HTD", "HKD"} {
			orders = append(orders, protocol.OrderInfo{OrderType: ot})
		}
	}
	perm := orders
	if s.cfg.Permitted != nil {
		perm = nil
		for _, o := range orders {
			for _, p := range s.cfg.Permitted {
				if o.OrderType == p || o.Service.ServiceName == p {
					perm = append(perm, o)
				}
			}
		}
	}
	return protocol.PartnerData{HostID: s.cfg.HostID, Name: sub.partner, Orders: orders,
		Users: []protocol.UserInfo{{UserID: sub.user, Status: "1", Permission: perm}}}
}

func (s *Sim) services() []protocol.OrderParams {
	if s.cfg.Services != nil {
		return s.cfg.Services
	}
	return []protocol.OrderParams{{ServiceName: "SCT", MsgName: "pain.001"}, {ServiceName: "SDD", ServiceOption: "COR", MsgName: "pain.008"},
		{ServiceName: "PSR", Scope: "BIL", MsgName: "pain.002"}, {ServiceName: "EOP", MsgName: "camt.053"}}
}
