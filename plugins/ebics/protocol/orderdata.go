package protocol

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// PubKey is a public key as carried in INI/HIA/HPB order data.
type PubKey struct {
	Version string // A005/A006, X002, E002
	Key     *rsa.PublicKey
	Cert    *x509.Certificate // nil when the key came without certificate
}

// Digest returns the key's digest for version v (see PublicKeyDigest).
func (k PubKey) Digest(v Version) []byte { return PublicKeyDigest(v, k.Key, k.Cert) }

func pubKeyInfo(v Version, parent *etree.Element, tag, prefix string, k PubKey, versionTag string) {
	e := parent.CreateElement(prefix + tag)
	if k.Cert != nil {
		xd := e.CreateElement("ds:X509Data")
		is := xd.CreateElement("ds:X509IssuerSerial")
		is.CreateElement("ds:X509IssuerName").SetText(k.Cert.Issuer.String())
		is.CreateElement("ds:X509SerialNumber").SetText(k.Cert.SerialNumber.String())
		xd.CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(k.Cert.Raw))
	}
	if v == H004 {
		pv := e.CreateElement(prefix + "PubKeyValue")
		rv := pv.CreateElement("ds:RSAKeyValue")
		rv.CreateElement("ds:Modulus").SetText(base64.StdEncoding.EncodeToString(k.Key.N.Bytes()))
		rv.CreateElement("ds:Exponent").SetText(base64.StdEncoding.EncodeToString(big.NewInt(int64(k.Key.E)).Bytes()))
		pv.CreateElement(prefix + "TimeStamp").SetText(time.Now().UTC().Format(TimestampLayout))
	}
	e.CreateElement(prefix + versionTag).SetText(k.Version)
}

func newOrderDoc(rootTag, ns string) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement(rootTag)
	root.CreateAttr("xmlns", ns)
	root.CreateAttr("xmlns:ds", NSDsig)
	return doc, root
}

// SignaturePubKeyOrderData builds the INI order data.
func SignaturePubKeyOrderData(v Version, k PubKey, partnerID, userID string) ([]byte, error) {
	if v == H005 && k.Cert == nil {
		return nil, fmt.Errorf("ebics INI: EBICS 3.0 requires a certificate")
	}
	doc, root := newOrderDoc("SignaturePubKeyOrderData", v.SigNS())
	pubKeyInfo(v, root, "SignaturePubKeyInfo", "", k, "SignatureVersion")
	root.CreateElement("PartnerID").SetText(partnerID)
	root.CreateElement("UserID").SetText(userID)
	return doc.WriteToBytes()
}

// HIARequestOrderData builds the HIA order data (X002 and E002 keys).
func HIARequestOrderData(v Version, auth, enc PubKey, partnerID, userID string) ([]byte, error) {
	if v == H005 && (auth.Cert == nil || enc.Cert == nil) {
		return nil, fmt.Errorf("ebics HIA: EBICS 3.0 requires certificates")
	}
	doc, root := newOrderDoc("HIARequestOrderData", v.NS())
	pubKeyInfo(v, root, "AuthenticationPubKeyInfo", "", auth, "AuthenticationVersion")
	pubKeyInfo(v, root, "EncryptionPubKeyInfo", "", enc, "EncryptionVersion")
	root.CreateElement("PartnerID").SetText(partnerID)
	root.CreateElement("UserID").SetText(userID)
	return doc.WriteToBytes()
}

// HPBResponseOrderData builds the bank's HPB order data.
func HPBResponseOrderData(v Version, auth, enc PubKey, hostID string) ([]byte, error) {
	doc, root := newOrderDoc("HPBResponseOrderData", v.NS())
	pubKeyInfo(v, root, "AuthenticationPubKeyInfo", "", auth, "AuthenticationVersion")
	pubKeyInfo(v, root, "EncryptionPubKeyInfo", "", enc, "EncryptionVersion")
	root.CreateElement("HostID").SetText(hostID)
	return doc.WriteToBytes()
}

// KeyOrderData is parsed INI/HIA/HPB order data.
type KeyOrderData struct {
	Kind      string // root element name
	Signature *PubKey
	Auth      *PubKey
	Enc       *PubKey
	PartnerID string
	UserID    string
	HostID    string
}

// ParseKeyOrderData parses INI (SignaturePubKeyOrderData), HIA
// (HIARequestOrderData) or HPB (HPBResponseOrderData) order data.
func ParseKeyOrderData(data []byte) (*KeyOrderData, error) {
	doc, err := ParseXML(data, 1<<20)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	out := &KeyOrderData{Kind: root.Tag, PartnerID: text(root, "PartnerID"), UserID: text(root, "UserID"), HostID: text(root, "HostID")}
	read := func(tag, vtag string) (*PubKey, error) {
		e := child(root, tag)
		if e == nil {
			return nil, xmlErr("unexpected", "%s missing in %s", tag, root.Tag)
		}
		return parsePubKeyInfo(e, vtag)
	}
	switch root.Tag {
	case "SignaturePubKeyOrderData":
		out.Signature, err = read("SignaturePubKeyInfo", "SignatureVersion")
	case "HIARequestOrderData", "HPBResponseOrderData":
		if out.Auth, err = read("AuthenticationPubKeyInfo", "AuthenticationVersion"); err == nil {
			out.Enc, err = read("EncryptionPubKeyInfo", "EncryptionVersion")
		}
	default:
		return nil, xmlErr("unexpected", "root element %q is not key order data", root.Tag)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func parsePubKeyInfo(e *etree.Element, vtag string) (*PubKey, error) {
	k := &PubKey{Version: text(e, vtag)}
	if xd := child(e, "X509Data"); xd != nil {
		if c := text(xd, "X509Certificate"); c != "" && !strings.HasPrefix(c, "{") {
			der, err := DecodeBase64(c)
			if err != nil {
				return nil, err
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, xmlErr("unexpected", "X509Certificate: %v", err)
			}
			pub, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok {
				return nil, xmlErr("unexpected", "certificate key is not RSA")
			}
			k.Cert, k.Key = cert, pub
		}
	}
	if pv := child(e, "PubKeyValue"); pv != nil {
		rv := child(pv, "RSAKeyValue")
		if rv == nil {
			return nil, xmlErr("unexpected", "PubKeyValue without RSAKeyValue")
		}
		mod, err1 := DecodeBase64(text(rv, "Modulus"))
		exp, err2 := DecodeBase64(text(rv, "Exponent"))
		if err1 != nil || err2 != nil || len(mod) == 0 || len(exp) == 0 || len(exp) > 4 {
			return nil, xmlErr("unexpected", "RSAKeyValue modulus/exponent invalid")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(mod), E: int(new(big.Int).SetBytes(exp).Int64())}
		if k.Key != nil && (k.Key.N.Cmp(pub.N) != 0 || k.Key.E != pub.E) {
			return nil, xmlErr("unexpected", "PubKeyValue differs from the certificate's key")
		}
		k.Key = pub
	}
	if k.Key == nil {
		return nil, xmlErr("unexpected", "%s: no key", e.Tag)
	}
	if k.Key.N.BitLen() < 2048 && k.Key.N.BitLen() != 0 {
		// Reported, not refused: the caller decides (the bank answers 09120x).
		return k, &KeyLengthError{Bits: k.Key.N.BitLen(), Key: k}
	}
	return k, nil
}

// KeyLengthError reports an RSA key shorter than 2048 bits.
type KeyLengthError struct {
	Bits int
	Key  *PubKey
}

// Error implements error.
func (e *KeyLengthError) Error() string {
	return fmt.Sprintf("ebics key: %d-bit RSA key, 2048 minimum", e.Bits)
}

// UserSignatureData builds the ES container (UserSignatureData with one
// OrderSignatureData).
func UserSignatureData(v Version, sigVersion string, sig []byte, partnerID, userID string) []byte {
	doc, root := newOrderDoc("UserSignatureData", v.SigNS())
	root.RemoveAttr("xmlns:ds")
	osd := root.CreateElement("OrderSignatureData")
	osd.CreateElement("SignatureVersion").SetText(sigVersion)
	osd.CreateElement("SignatureValue").SetText(base64.StdEncoding.EncodeToString(sig))
	osd.CreateElement("PartnerID").SetText(partnerID)
	osd.CreateElement("UserID").SetText(userID)
	b, _ := doc.WriteToBytes()
	return b
}

// OrderSignature is one parsed ES.
type OrderSignature struct {
	Version   string
	Value     []byte
	PartnerID string
	UserID    string
}

// ParseUserSignatureData parses the ES container.
func ParseUserSignatureData(data []byte) ([]OrderSignature, error) {
	doc, err := ParseXML(data, 1<<20)
	if err != nil {
		return nil, err
	}
	if doc.Root().Tag != "UserSignatureData" {
		return nil, xmlErr("unexpected", "root %q is not UserSignatureData", doc.Root().Tag)
	}
	var out []OrderSignature
	for _, osd := range doc.Root().SelectElements("OrderSignatureData") {
		v, err := DecodeBase64(text(osd, "SignatureValue"))
		if err != nil {
			return nil, err
		}
		out = append(out, OrderSignature{Version: text(osd, "SignatureVersion"), Value: v, PartnerID: text(osd, "PartnerID"), UserID: text(osd, "UserID")})
	}
	if len(out) == 0 {
		return nil, xmlErr("unexpected", "no OrderSignatureData")
	}
	return out, nil
}

// SplitSegments cuts base64 text into segments of at most size bytes.
func SplitSegments(s string, size int) []string {
	if size <= 0 {
		size = 1 << 20
	}
	var out []string
	for len(s) > size {
		out = append(out, s[:size])
		s = s[size:]
	}
	return append(out, s)
}

// HAAResponseOrderData builds the HAA answer: in 2.5 the order types
// offered for download, in 3.0 the BTF services.
func HAAResponseOrderData(v Version, orderTypes []string, services []OrderParams) []byte {
	doc, root := newOrderDoc("HAAResponseOrderData", v.NS())
	root.RemoveAttr("xmlns:ds")
	if v == H004 {
		root.CreateElement("OrderTypes").SetText(strings.Join(orderTypes, " "))
	} else {
		for _, s := range services {
			svc := root.CreateElement("Service")
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
	}
	b, _ := doc.WriteToBytes()
	return b
}

// ParseHAA reads an HAA answer (either version).
func ParseHAA(data []byte) (orderTypes []string, services []OrderParams, err error) {
	doc, err := ParseXML(data, 1<<20)
	if err != nil {
		return nil, nil, err
	}
	root := doc.Root()
	if root.Tag != "HAAResponseOrderData" {
		return nil, nil, xmlErr("unexpected", "root %q is not HAAResponseOrderData", root.Tag)
	}
	orderTypes = strings.Fields(text(root, "OrderTypes"))
	for _, svc := range root.SelectElements("Service") {
		p := OrderParams{ServiceName: text(svc, "ServiceName"), Scope: text(svc, "Scope"), ServiceOption: text(svc, "ServiceOption")}
		if c := child(svc, "Container"); c != nil {
			p.ContainerType = c.SelectAttrValue("containerType", "")
		}
		if mn := child(svc, "MsgName"); mn != nil {
			p.MsgName, p.MsgVersion = strings.TrimSpace(mn.Text()), mn.SelectAttrValue("version", "")
		}
		services = append(services, p)
	}
	return orderTypes, services, nil
}
