package atos

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acquit/acquit/internal/boundedre"
	"github.com/acquit/acquit/plugins/atos/sips"
)

//go:embed sample.yaml
var sampleConfig string

//go:embed schema.json
var configSchema string

// SampleConfig returns a commented example of the plugin's settings block
// (YAML, as written in acquit's configuration file).
func SampleConfig() string { return sampleConfig }

// ConfigSchema returns the JSON Schema of the settings block.
func ConfigSchema() string { return configSchema }

// Settings is the plugin's settings block (JSON, secrets resolved).
type Settings struct {
	// DefaultMerchant names the account used when a request names none
	// (default: the first merchant).
	DefaultMerchant string `json:"default_merchant,omitempty"`
	// RequestTimeout bounds one call to Sips (Go duration, default "20s").
	RequestTimeout string `json:"request_timeout,omitempty"`
	// MaxResponseBytes bounds an answer from Sips (default 262144).
	MaxResponseBytes int64              `json:"max_response_bytes,omitempty"`
	Merchants        []MerchantSettings `json:"merchants"`
}

// MerchantSettings is one Sips merchant account.
type MerchantSettings struct {
	Name        string `json:"name"`
	MerchantID  string `json:"merchant_id"`
	Brand       string `json:"brand,omitempty"`       // worldline (default), mercanet, sogenactif, sherlocks, scellius
	Environment string `json:"environment"`           // simulation, test, production
	PaypageURL  string `json:"paypage_url,omitempty"` // overrides the brand's Paypage base URL
	OfficeURL   string `json:"office_url,omitempty"`  // overrides the brand's Office base URL
	// Keys maps keyVersion to secret key; several at once during a
	// rotation.
	Keys map[string]string `json:"keys"`
	// KeyVersion is the key used to seal requests (default: the highest
	// numeric version in Keys).
	KeyVersion             string   `json:"key_version,omitempty"`
	SealAlgorithm          string   `json:"seal_algorithm,omitempty"`           // HMAC-SHA-256 (default) or SHA-256
	InterfaceVersion       string   `json:"interface_version,omitempty"`        // HP_3.x (post) or IR_WS_2.x (json)
	OfficeInterfaceVersion string   `json:"office_interface_version,omitempty"` // DR_WS_2.x
	CaptureMode            string   `json:"capture_mode,omitempty"`             // AUTHOR_CAPTURE, VALIDATION, IMMEDIATE
	CaptureDay             *int     `json:"capture_day,omitempty"`              // 0..99
	PaymentMeans           []string `json:"payment_means,omitempty"`            // paymentMeanBrandList
	ReferenceStyle         string   `json:"reference_style,omitempty"`          // transaction_reference (default) or s10
	Encode                 string   `json:"encode,omitempty"`                   // "", base64, base64url (post mode)
	Mode                   string   `json:"mode,omitempty"`                     // post (default) or json
	OrderChannel           string   `json:"order_channel,omitempty"`            // default INTERNET
}

// Defaults for unset settings.
const (
	DefaultPostInterface   = "HP_3.4"
	DefaultJSONInterface   = "IR_WS_2.58"
	DefaultOfficeInterface = "DR_WS_2.58"
	DefaultCaptureMode     = "AUTHOR_CAPTURE"
	DefaultOrderChannel    = "INTERNET"
	DefaultRequestTimeout  = 20 * time.Second
)

// Reference styles.
const (
	StyleTransactionReference = "transaction_reference"
	StyleS10                  = "s10"
)

var (
	reName       = boundedre.MustCompile(`^[a-z0-9][a-z0-9_-]*$`, 1, 64)
	reMerchantID = boundedre.MustCompile(`^[0-9A-Za-z]*$`, 1, 32)
	reKeyVersion = boundedre.MustCompile(`^[0-9A-Za-z]*$`, 1, 10)
	reBrand      = boundedre.MustCompile(`^[A-Z0-9_]*$`, 1, 32)
)

// merchant is one validated account.
type merchant struct {
	MerchantSettings
	acc        *sips.Account
	paypage    string // base URL
	office     string // base URL
	captureDay string
}

// config is a validated Settings.
type config struct {
	settings Settings
	byName   map[string]*merchant
	byID     map[string]*merchant
	def      *merchant
	timeout  time.Duration
}

// parseSettings decodes and validates a settings block.
func parseSettings(raw []byte) (*config, error) {
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("atos settings: %w", err)
	}
	c := &config{settings: s, byName: map[string]*merchant{}, byID: map[string]*merchant{}, timeout: DefaultRequestTimeout}
	if s.RequestTimeout != "" {
		d, err := time.ParseDuration(s.RequestTimeout)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return nil, fmt.Errorf("atos settings: request_timeout %q must be a duration in (0, 5m]", s.RequestTimeout)
		}
		c.timeout = d
	}
	if s.MaxResponseBytes < 0 || s.MaxResponseBytes > 16<<20 {
		return nil, fmt.Errorf("atos settings: max_response_bytes must be 0..16777216")
	}
	if len(s.Merchants) == 0 {
		return nil, fmt.Errorf("atos settings: no merchants")
	}
	for i := range s.Merchants {
		m, err := validateMerchant(s.Merchants[i])
		if err != nil {
			return nil, fmt.Errorf("atos settings: merchants[%d]: %w", i, err)
		}
		if _, dup := c.byName[m.Name]; dup {
			return nil, fmt.Errorf("atos settings: merchant name %q used twice", m.Name)
		}
		if _, dup := c.byID[m.MerchantID]; dup {
			return nil, fmt.Errorf("atos settings: merchant_id %s used twice", m.MerchantID)
		}
		c.byName[m.Name] = m
		c.byID[m.MerchantID] = m
		if c.def == nil {
			c.def = m
		}
	}
	if s.DefaultMerchant != "" {
		m, ok := c.byName[s.DefaultMerchant]
		if !ok {
			return nil, fmt.Errorf("atos settings: default_merchant %q is not a merchant", s.DefaultMerchant)
		}
		c.def = m
	}
	return c, nil
}

func validateMerchant(ms MerchantSettings) (*merchant, error) {
	m := &merchant{MerchantSettings: ms}
	if !reName.MatchString(m.Name) {
		return nil, fmt.Errorf("name %q must be 1-64 of a-z 0-9 _ -", m.Name)
	}
	if !reMerchantID.MatchString(m.MerchantID) {
		return nil, fmt.Errorf("merchant %s: merchant_id %q must be 1-32 letters or digits", m.Name, m.MerchantID)
	}
	if m.Brand == "" {
		m.Brand = "worldline"
	}
	m.Brand = strings.ToLower(m.Brand)
	paypage, office, err := platformURLs(m.Brand, m.Environment)
	if err != nil {
		return nil, fmt.Errorf("merchant %s: %w", m.Name, err)
	}
	if m.PaypageURL != "" {
		paypage = m.PaypageURL
	}
	if m.OfficeURL != "" {
		office = m.OfficeURL
	}
	for _, u := range []struct{ name, v string }{{"paypage_url", paypage}, {"office_url", office}} {
		pu, err := url.Parse(u.v)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.RawQuery != "" {
			return nil, fmt.Errorf("merchant %s: %s %q is not an http(s) base URL", m.Name, u.name, u.v)
		}
	}
	m.paypage, m.office = strings.TrimRight(paypage, "/"), strings.TrimRight(office, "/")
	if len(m.Keys) == 0 {
		return nil, fmt.Errorf("merchant %s: no keys", m.Name)
	}
	for kv, secret := range m.Keys {
		if !reKeyVersion.MatchString(kv) {
			return nil, fmt.Errorf("merchant %s: key version %q must be 1-10 letters or digits", m.Name, kv)
		}
		if len(secret) < 8 {
			return nil, fmt.Errorf("merchant %s: key version %s: secret key too short", m.Name, kv)
		}
	}
	if m.KeyVersion == "" {
		m.KeyVersion = highestKeyVersion(m.Keys)
	} else if _, ok := m.Keys[m.KeyVersion]; !ok {
		return nil, fmt.Errorf("merchant %s: key_version %q has no key", m.Name, m.KeyVersion)
	}
	alg, err := sips.ParseSealAlgorithm(m.SealAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("merchant %s: %w", m.Name, err)
	}
	m.SealAlgorithm = string(alg)
	if m.Mode == "" {
		m.Mode = "post"
	}
	switch m.Mode {
	case "post":
		if m.InterfaceVersion == "" {
			m.InterfaceVersion = DefaultPostInterface
		}
		if !strings.HasPrefix(m.InterfaceVersion, "HP_") {
			return nil, fmt.Errorf("merchant %s: interface_version %q must be HP_x.y in post mode", m.Name, m.InterfaceVersion)
		}
	case "json":
		if m.InterfaceVersion == "" {
			m.InterfaceVersion = DefaultJSONInterface
		}
		if !strings.HasPrefix(m.InterfaceVersion, "IR_WS_") {
			return nil, fmt.Errorf("merchant %s: interface_version %q must be IR_WS_x.y in json mode", m.Name, m.InterfaceVersion)
		}
		if m.Encode != "" {
			return nil, fmt.Errorf("merchant %s: encode applies to post mode only", m.Name)
		}
	default:
		return nil, fmt.Errorf("merchant %s: mode %q must be post or json", m.Name, m.Mode)
	}
	if m.OfficeInterfaceVersion == "" {
		m.OfficeInterfaceVersion = DefaultOfficeInterface
	}
	if !strings.HasPrefix(m.OfficeInterfaceVersion, "DR_WS_") {
		return nil, fmt.Errorf("merchant %s: office_interface_version %q must be DR_WS_x.y", m.Name, m.OfficeInterfaceVersion)
	}
	if m.CaptureMode == "" {
		m.CaptureMode = DefaultCaptureMode
	}
	switch m.CaptureMode {
	case "AUTHOR_CAPTURE", "VALIDATION", "IMMEDIATE":
	default:
		return nil, fmt.Errorf("merchant %s: capture_mode %q must be AUTHOR_CAPTURE, VALIDATION or IMMEDIATE", m.Name, m.CaptureMode)
	}
	if m.CaptureDay != nil {
		if *m.CaptureDay < 0 || *m.CaptureDay > 99 {
			return nil, fmt.Errorf("merchant %s: capture_day must be 0..99", m.Name)
		}
		m.captureDay = strconv.Itoa(*m.CaptureDay)
	}
	for _, pm := range m.PaymentMeans {
		if !reBrand.MatchString(pm) {
			return nil, fmt.Errorf("merchant %s: payment mean %q must be upper-case letters, digits or _", m.Name, pm)
		}
	}
	if m.ReferenceStyle == "" {
		m.ReferenceStyle = StyleTransactionReference
	}
	if m.ReferenceStyle != StyleTransactionReference && m.ReferenceStyle != StyleS10 {
		return nil, fmt.Errorf("merchant %s: reference_style %q must be transaction_reference or s10", m.Name, m.ReferenceStyle)
	}
	switch m.Encode {
	case "", "base64", "base64url":
	default:
		return nil, fmt.Errorf("merchant %s: encode %q must be empty, base64 or base64url", m.Name, m.Encode)
	}
	if m.OrderChannel == "" {
		m.OrderChannel = DefaultOrderChannel
	}
	keys := make(map[string]string, len(m.Keys))
	for k, v := range m.Keys {
		keys[k] = v
	}
	m.acc = &sips.Account{MerchantID: m.MerchantID, Keys: keys, Algorithm: alg}
	return m, nil
}

// highestKeyVersion picks the numerically highest key version (then the
// lexically highest).
func highestKeyVersion(keys map[string]string) string {
	vs := make([]string, 0, len(keys))
	for k := range keys {
		vs = append(vs, k)
	}
	sort.Slice(vs, func(i, j int) bool {
		a, ea := strconv.Atoi(vs[i])
		b, eb := strconv.Atoi(vs[j])
		if ea == nil && eb == nil {
			return a < b
		}
		return vs[i] < vs[j]
	})
	return vs[len(vs)-1]
}
