package protocol

import (
	"cmp"
	"strings"

	"github.com/beevik/etree"
)

// OrderInfo is one order the bank offers a partner (HTD/HKD).
type OrderInfo struct {
	OrderType    string // OrderType (2.5) or AdminOrderType (3.0)
	FileFormat   string // 2.5 FUL/FDL
	TransferType string // 2.5: Upload or Download
	Service      OrderParams
	Description  string
}

// Matches reports whether the order info offers order type ot (and, for
// BTU/BTD, the service name and message).
func (o OrderInfo) Matches(ot string, svc OrderParams, fileFormat string) bool {
	if o.OrderType != ot {
		return false
	}
	if (ot == "BTU" || ot == "BTD") && (o.Service.ServiceName != svc.ServiceName || o.Service.MsgName != svc.MsgName) {
		return false
	}
	if fileFormat != "" && o.FileFormat != "" && o.FileFormat != fileFormat {
		return false
	}
	return true
}

// UserInfo is a subscriber and the orders it may submit.
type UserInfo struct {
	UserID     string
	Status     string
	Name       string
	Permission []OrderInfo // 2.5: OrderType only
}

// PartnerData is parsed HTD or HKD order data.
type PartnerData struct {
	Kind   string // HTDResponseOrderData or HKDResponseOrderData
	HostID string
	Name   string
	Orders []OrderInfo
	Users  []UserInfo
}

func serviceEl(parent *etree.Element, s OrderParams) {
	svc := parent.CreateElement("Service")
	svc.CreateElement("ServiceName").SetText(s.ServiceName)
	if s.Scope != "" {
		svc.CreateElement("Scope").SetText(s.Scope)
	}
	if s.ServiceOption != "" {
		svc.CreateElement("ServiceOption").SetText(s.ServiceOption)
	}
	if s.ContainerType != "" {
		svc.CreateElement("Container").CreateAttr("containerType", s.ContainerType)
	}
	mn := svc.CreateElement("MsgName")
	if s.MsgVersion != "" {
		mn.CreateAttr("version", s.MsgVersion)
	}
	mn.SetText(s.MsgName)
}

// PartnerOrderData builds HTD (one user) or HKD (root
// "HKDResponseOrderData") order data.
func PartnerOrderData(v Version, root string, p PartnerData) []byte {
	doc, r := newOrderDoc(root, v.NS())
	r.RemoveAttr("xmlns:ds")
	pi := r.CreateElement("PartnerInfo")
	pi.CreateElement("AddressInfo").CreateElement("Name").SetText(cmp.Or(p.Name, "-"))
	pi.CreateElement("BankInfo").CreateElement("HostID").SetText(p.HostID)
	for _, o := range p.Orders {
		oi := pi.CreateElement("OrderInfo")
		if v == H004 {
			oi.CreateElement("OrderType").SetText(o.OrderType)
			if o.FileFormat != "" {
				oi.CreateElement("FileFormat").SetText(o.FileFormat)
			}
			oi.CreateElement("TransferType").SetText(o.TransferType)
		} else {
			oi.CreateElement("AdminOrderType").SetText(o.OrderType)
			if o.Service.ServiceName != "" {
				serviceEl(oi, o.Service)
			}
		}
		oi.CreateElement("Description").SetText(cmp.Or(o.Description, o.OrderType))
	}
	for _, u := range p.Users {
		ui := r.CreateElement("UserInfo")
		id := ui.CreateElement("UserID")
		id.CreateAttr("Status", cmp.Or(u.Status, "1"))
		id.SetText(u.UserID)
		if u.Name != "" {
			ui.CreateElement("Name").SetText(u.Name)
		}
		if v == H004 {
			var ots []string
			for _, o := range u.Permission {
				ots = append(ots, o.OrderType)
			}
			ui.CreateElement("Permission").CreateElement("OrderTypes").SetText(strings.Join(ots, " "))
		} else {
			for _, o := range u.Permission {
				pe := ui.CreateElement("Permission")
				pe.CreateElement("AdminOrderType").SetText(o.OrderType)
				if o.Service.ServiceName != "" {
					serviceEl(pe, o.Service)
				}
			}
		}
	}
	b, _ := doc.WriteToBytes()
	return b
}

func parseService(e *etree.Element) OrderParams {
	svc := child(e, "Service")
	if svc == nil {
		return OrderParams{}
	}
	p := OrderParams{ServiceName: text(svc, "ServiceName"), Scope: text(svc, "Scope"), ServiceOption: text(svc, "ServiceOption")}
	if c := child(svc, "Container"); c != nil {
		p.ContainerType = c.SelectAttrValue("containerType", "")
	}
	if mn := child(svc, "MsgName"); mn != nil {
		p.MsgName, p.MsgVersion = strings.TrimSpace(mn.Text()), mn.SelectAttrValue("version", "")
	}
	return p
}

// ParsePartnerData reads HTD or HKD order data of either version.
func ParsePartnerData(data []byte) (*PartnerData, error) {
	doc, err := ParseXML(data, 4<<20)
	if err != nil {
		return nil, err
	}
	r := doc.Root()
	if r.Tag != "HTDResponseOrderData" && r.Tag != "HKDResponseOrderData" {
		return nil, xmlErr("unexpected", "root %q is not HTD/HKD order data", r.Tag)
	}
	pi := child(r, "PartnerInfo")
	if pi == nil {
		return nil, xmlErr("unexpected", "no PartnerInfo")
	}
	p := &PartnerData{Kind: r.Tag, HostID: text(child(pi, "BankInfo"), "HostID"), Name: text(child(pi, "AddressInfo"), "Name")}
	for _, oi := range pi.SelectElements("OrderInfo") {
		p.Orders = append(p.Orders, OrderInfo{OrderType: cmp.Or(text(oi, "OrderType"), text(oi, "AdminOrderType")),
			FileFormat: text(oi, "FileFormat"), TransferType: text(oi, "TransferType"), Service: parseService(oi), Description: text(oi, "Description")})
	}
	for _, ui := range r.SelectElements("UserInfo") {
		u := UserInfo{UserID: text(ui, "UserID"), Name: text(ui, "Name")}
		if id := child(ui, "UserID"); id != nil {
			u.Status = id.SelectAttrValue("Status", "")
		}
		for _, pe := range ui.SelectElements("Permission") {
			for _, ot := range strings.Fields(text(pe, "OrderTypes")) {
				u.Permission = append(u.Permission, OrderInfo{OrderType: ot})
			}
			if at := text(pe, "AdminOrderType"); at != "" {
				u.Permission = append(u.Permission, OrderInfo{OrderType: at, Service: parseService(pe)})
			}
		}
		p.Users = append(p.Users, u)
	}
	return p, nil
}
