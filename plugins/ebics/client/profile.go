// Package client is the EBICS subscriber side: onboarding (HEV, INI, HIA,
// HPB with bank key hashes checked against the letter), crash-safe
// streaming uploads and downloads with receipts, for EBICS 2.5 (H004) and
// 3.0 (H005), driven by bank dialect profiles.
package client

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// Function says how one business function maps to an EBICS order.
type Function struct {
	// OrderType is the order type (2.5: FUL, FDL, CCT, CDD, HAC, PTK, Z01,
	// C53, STA...; 3.0: BTU, BTD, HAC, PTK).
	OrderType string `json:"order_type"`
	// FileFormat and CountryCode are the FUL/FDL parameters (France).
	FileFormat  string `json:"file_format,omitempty"`
	CountryCode string `json:"country_code,omitempty"`
	// EBICS 3.0 BTF service parameters.
	ServiceName   string `json:"service_name,omitempty"`
	Scope         string `json:"scope,omitempty"`
	ServiceOption string `json:"service_option,omitempty"`
	Container     string `json:"container,omitempty"`
	MsgName       string `json:"msg_name,omitempty"`
	MsgVersion    string `json:"msg_version,omitempty"`
	// Format is the format name given to downloaded documents
	// (e.g. "pain.002.001.03", "ptk-text", "camt.053.001.02").
	Format string `json:"format,omitempty"`
}

// Params returns the protocol order parameters.
func (f Function) Params() protocol.OrderParams {
	return protocol.OrderParams{FileFormat: f.FileFormat, CountryCode: f.CountryCode, ServiceName: f.ServiceName, Scope: f.Scope,
		ServiceOption: f.ServiceOption, ContainerType: f.Container, MsgName: f.MsgName, MsgVersion: f.MsgVersion}
}

// Profile is a bank dialect.
type Profile struct {
	Name    string `json:"name"`
	Version string `json:"version"` // H004 or H005
	// Functions maps business functions (sct, sdd, psr, hac, ptk,
	// statement) to orders.
	Functions map[string]Function `json:"functions"`
	// SegmentSize is the upload segment size in base64 bytes.
	SegmentSize int `json:"segment_size"`
	// CertMode: "none", "self-signed" or "ca" (EBICS T vs TS).
	CertMode string `json:"cert_mode"`
	// SignatureVersion: A005 or A006.
	SignatureVersion string `json:"signature_version"`
	// Acks lists the acknowledgement kinds the bank offers (hac, psr, ptk).
	Acks []string `json:"acks"`
	// PTKProfile names the PTK text layout (a daemon/acks profile: "de", "fr", "en").
	PTKProfile string `json:"ptk_profile,omitempty"`
	// ESStripCRLF says whether carriage returns, line feeds and Ctrl-Z are
	// left out of the order data digest the ES (A005/A006) signs and
	// EBICS 3.0's DataDigest carries. nil means true: the specification's
	// data preparation, as libeufin, ebics-java, epics and node-ebics-client
	// do; false hashes the data as transmitted (ebics-client-php), for a
	// bank that verifies that way. The file itself is sent unchanged
	// either way. See plugins/ebics/PROTOCOL.md.
	ESStripCRLF *bool `json:"es_strip_crlf,omitempty"`
	// ClientOrderID (EBICS 2.5 only) says whether acquit sends its own
	// OrderID in upload initialisations. nil means true; false leaves it
	// out for banks that assign it (optional in the H004 schema since 2.5)
	// and takes the bank's from the response. EBICS 3.0 has no client
	// OrderID.
	ClientOrderID *bool `json:"client_order_id,omitempty"`
}

// StripCRLF reports the effective es_strip_crlf (default true).
func (p Profile) StripCRLF() bool { return p.ESStripCRLF == nil || *p.ESStripCRLF }

// SendsOrderID reports whether upload initialisations carry a
// client-assigned OrderID: only in EBICS 2.5, and unless client_order_id
// is false.
func (p Profile) SendsOrderID() bool {
	return p.Version == string(protocol.H004) && (p.ClientOrderID == nil || *p.ClientOrderID)
}

// DefaultSegmentSize is used when a profile sets none (512 KiB: some banks
// cap a whole request at 1 MB).
const DefaultSegmentSize = 512 << 10

// Builtin profiles.
var builtin = map[string]Profile{
	"fr": {Name: "fr", Version: "H004", CertMode: "self-signed", SignatureVersion: "A005", SegmentSize: DefaultSegmentSize,
		Acks: []string{"psr", "ptk"}, PTKProfile: "fr",
		Functions: map[string]Function{
			"sct":       {OrderType: "FUL", FileFormat: "pain.001.001.03", CountryCode: "FR"},
			"sdd":       {OrderType: "FUL", FileFormat: "pain.008.001.02", CountryCode: "FR"},
			"psr":       {OrderType: "FDL", FileFormat: "pain.002.001.03", CountryCode: "FR", Format: "pain.002.001.03"},
			"ptk":       {OrderType: "PTK", Format: "ptk-text"},
			"hac":       {OrderType: "HAC", Format: "pain.002.001.03"},
			"statement": {OrderType: "FDL", FileFormat: "camt.053.001.02", CountryCode: "FR", Format: "camt.053.001.02"},
		}},
	"de": {Name: "de", Version: "H004", CertMode: "none", SignatureVersion: "A006", SegmentSize: DefaultSegmentSize,
		Acks: []string{"hac", "ptk", "psr"}, PTKProfile: "de",
		Functions: map[string]Function{
			"sct":       {OrderType: "CCT"},
			"sdd":       {OrderType: "CDD"},
			"hac":       {OrderType: "HAC", Format: "pain.002.001.03"},
			"ptk":       {OrderType: "PTK", Format: "ptk-text"},
			"psr":       {OrderType: "Z01", Format: "pain.002.001.03"},
			"statement": {OrderType: "C53", Format: "camt.053.001.02"},
			"mt940":     {OrderType: "STA", Format: "mt940"},
		}},
	"v3": {Name: "v3", Version: "H005", CertMode: "self-signed", SignatureVersion: "A006", SegmentSize: DefaultSegmentSize,
		Acks: []string{"hac", "psr"},
		Functions: map[string]Function{
			"sct":       {OrderType: "BTU", ServiceName: "SCT", MsgName: "pain.001", MsgVersion: "03"},
			"sdd":       {OrderType: "BTU", ServiceName: "SDD", ServiceOption: "COR", MsgName: "pain.008", MsgVersion: "02"},
			"psr":       {OrderType: "BTD", ServiceName: "PSR", Scope: "BIL", MsgName: "pain.002", MsgVersion: "03", Format: "pain.002.001.03"},
			"hac":       {OrderType: "HAC", Format: "pain.002.001.03"},
			"statement": {OrderType: "BTD", ServiceName: "EOP", MsgName: "camt.053", MsgVersion: "02", Format: "camt.053.001.02"},
		}},
}

// BuiltinProfile returns a copy of a shipped profile: "fr", "de" or "v3".
func BuiltinProfile(name string) (Profile, error) {
	p, ok := builtin[name]
	if !ok {
		return Profile{}, fmt.Errorf("ebics: unknown profile %q (known: %v)", name, ProfileNames())
	}
	// deep copy the map
	raw, _ := json.Marshal(p)
	var out Profile
	json.Unmarshal(raw, &out)
	return out, nil
}

// ProfileNames lists the shipped profiles.
func ProfileNames() []string {
	var n []string
	for k := range builtin {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Resolve starts from the named builtin (if base is set), overlays the
// given profile's non-empty fields and validates the result.
func Resolve(base string, over Profile) (Profile, error) {
	p := over
	if base != "" {
		b, err := BuiltinProfile(base)
		if err != nil {
			return Profile{}, err
		}
		if over.Version != "" {
			b.Version = over.Version
		}
		if over.SegmentSize != 0 {
			b.SegmentSize = over.SegmentSize
		}
		if over.CertMode != "" {
			b.CertMode = over.CertMode
		}
		if over.SignatureVersion != "" {
			b.SignatureVersion = over.SignatureVersion
		}
		if over.Acks != nil {
			b.Acks = over.Acks
		}
		if over.PTKProfile != "" {
			b.PTKProfile = over.PTKProfile
		}
		if over.ESStripCRLF != nil {
			b.ESStripCRLF = over.ESStripCRLF
		}
		if over.ClientOrderID != nil {
			b.ClientOrderID = over.ClientOrderID
		}
		for k, f := range over.Functions {
			b.Functions[k] = f
		}
		p = b
	}
	return p, p.Validate()
}

// Validate checks a profile.
func (p Profile) Validate() error {
	v, err := protocol.ParseVersion(p.Version)
	if err != nil {
		return fmt.Errorf("ebics profile %s: %w", p.Name, err)
	}
	if p.SignatureVersion != protocol.A005 && p.SignatureVersion != protocol.A006 {
		return fmt.Errorf("ebics profile %s: signature_version %q", p.Name, p.SignatureVersion)
	}
	switch p.CertMode {
	case "none", "self-signed", "ca":
	default:
		return fmt.Errorf("ebics profile %s: cert_mode %q", p.Name, p.CertMode)
	}
	if v == protocol.H005 && p.ClientOrderID != nil && *p.ClientOrderID {
		return fmt.Errorf("ebics profile %s: client_order_id: EBICS 3.0 has no client-assigned OrderID", p.Name)
	}
	if v == protocol.H005 && p.CertMode == "none" {
		return fmt.Errorf("ebics profile %s: EBICS 3.0 requires certificates", p.Name)
	}
	if p.SegmentSize < 0 || p.SegmentSize > 1<<20 {
		return fmt.Errorf("ebics profile %s: segment_size %d out of range", p.Name, p.SegmentSize)
	}
	for name, f := range p.Functions {
		switch {
		case v == protocol.H005 && (f.OrderType == "BTU" || f.OrderType == "BTD") && (f.ServiceName == "" || f.MsgName == ""):
			return fmt.Errorf("ebics profile %s: function %s: BTU/BTD need service_name and msg_name", p.Name, name)
		case v == protocol.H004 && (f.OrderType == "FUL" || f.OrderType == "FDL") && f.FileFormat == "":
			return fmt.Errorf("ebics profile %s: function %s: FUL/FDL need file_format", p.Name, name)
		case f.OrderType == "":
			return fmt.Errorf("ebics profile %s: function %s: no order_type", p.Name, name)
		}
	}
	return nil
}

// CheckOrderTypes compares a profile with the order types the bank lists
// (HAA/HTD/HKD answer) and returns the functions the bank does not offer.
func (p Profile) CheckOrderTypes(offered []string) []string {
	set := map[string]bool{}
	for _, o := range offered {
		set[o] = true
	}
	var missing []string
	for name, f := range p.Functions {
		if !set[f.OrderType] {
			missing = append(missing, name+":"+f.OrderType)
		}
	}
	sort.Strings(missing)
	return missing
}
