package worldline

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/acquit/acquit/internal/boundedre"
	"github.com/acquit/acquit/plugins/worldline/direct"
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
	// RequestTimeout bounds one call to Worldline (Go duration, default 20s).
	RequestTimeout string `json:"request_timeout,omitempty"`
	// MaxResponseBytes bounds an answer from Worldline (default 262144).
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`
	// MaxWebhookBytes bounds a webhook body (default 65536).
	MaxWebhookBytes int64              `json:"max_webhook_bytes,omitempty"`
	Merchants       []MerchantSettings `json:"merchants"`
}

// MerchantSettings is one Worldline Direct account (PSPID).
type MerchantSettings struct {
	Name        string `json:"name"`
	MerchantID  string `json:"merchant_id"`
	Environment string `json:"environment"`       // test, production
	APIURL      string `json:"api_url,omitempty"` // overrides the environment's endpoint
	APIKeyID    string `json:"api_key_id"`
	APISecret   string `json:"api_secret"`
	// WebhookKeys maps a webhook key id (X-GCS-KeyId) to its secret;
	// several at once during a rotation.
	WebhookKeys       map[string]string `json:"webhook_keys"`
	AuthorizationMode string            `json:"authorization_mode,omitempty"` // SALE (default), FINAL_AUTHORIZATION, PRE_AUTHORIZATION
	SessionTimeout    int               `json:"session_timeout,omitempty"`    // minutes, default 180
	Variant           string            `json:"variant,omitempty"`
}

// Defaults and endpoints.
const (
	DefaultRequestTimeout  = 20 * time.Second
	DefaultSessionTimeout  = 180
	DefaultMaxWebhookBytes = 64 << 10
	TestURL                = "https://payment.preprod.direct.worldline-solutions.com"
	ProductionURL          = "https://payment.direct.worldline-solutions.com"
)

// The length bounds are checked apart from the patterns (boundedre): Go's
// regexp compiles a bounded repetition into one copy of its class per
// length.
var (
	reName       = boundedre.MustCompile(`^[a-z0-9][a-z0-9_-]*$`, 1, 64)
	reMerchantID = boundedre.MustCompile(`^[0-9A-Za-z_.-]*$`, 1, 64)
	reKeyID      = boundedre.MustCompile(`^[0-9A-Za-z_.-]*$`, 1, 128)
)

// merchant is one validated account.
type merchant struct {
	MerchantSettings
	ep direct.Endpoint
}

// config is a validated Settings.
type config struct {
	settings   Settings
	byName     map[string]*merchant
	byID       map[string]*merchant
	byKeyID    map[string]*merchant // webhook key id -> account
	def        *merchant
	timeout    time.Duration
	maxWebhook int64
}

// webhookSecret returns the secret of a webhook key id.
func (c *config) webhookSecret(keyID string) (string, bool) {
	m, ok := c.byKeyID[keyID]
	if !ok {
		return "", false
	}
	return m.WebhookKeys[keyID], true
}

func (c *config) merchant(name string) (*merchant, error) {
	if name == "" {
		return c.def, nil
	}
	m, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("worldline: unknown merchant %q", name)
	}
	return m, nil
}

// parseSettings decodes and validates a settings block.
func parseSettings(raw []byte) (*config, error) {
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("worldline settings: %w", err)
	}
	c := &config{settings: s, byName: map[string]*merchant{}, byID: map[string]*merchant{}, byKeyID: map[string]*merchant{},
		timeout: DefaultRequestTimeout, maxWebhook: DefaultMaxWebhookBytes}
	if s.RequestTimeout != "" {
		d, err := time.ParseDuration(s.RequestTimeout)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return nil, fmt.Errorf("worldline settings: request_timeout %q must be a duration in (0, 5m]", s.RequestTimeout)
		}
		c.timeout = d
	}
	if s.MaxResponseBytes < 0 || s.MaxResponseBytes > 16<<20 {
		return nil, fmt.Errorf("worldline settings: max_response_bytes must be 0..16777216")
	}
	if s.MaxWebhookBytes < 0 || s.MaxWebhookBytes > 16<<20 {
		return nil, fmt.Errorf("worldline settings: max_webhook_bytes must be 0..16777216")
	}
	if s.MaxWebhookBytes > 0 {
		c.maxWebhook = s.MaxWebhookBytes
	}
	if len(s.Merchants) == 0 {
		return nil, fmt.Errorf("worldline settings: no merchants")
	}
	for i := range s.Merchants {
		m, err := validateMerchant(s.Merchants[i])
		if err != nil {
			return nil, fmt.Errorf("worldline settings: merchants[%d]: %w", i, err)
		}
		if _, dup := c.byName[m.Name]; dup {
			return nil, fmt.Errorf("worldline settings: merchant name %q used twice", m.Name)
		}
		if _, dup := c.byID[m.MerchantID]; dup {
			return nil, fmt.Errorf("worldline settings: merchant_id %s used twice", m.MerchantID)
		}
		for k := range m.WebhookKeys {
			if o, dup := c.byKeyID[k]; dup {
				return nil, fmt.Errorf("worldline settings: webhook key id %q used by %s and %s", k, o.Name, m.Name)
			}
			c.byKeyID[k] = m
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
			return nil, fmt.Errorf("worldline settings: default_merchant %q is not a merchant", s.DefaultMerchant)
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
		return nil, fmt.Errorf("merchant %s: merchant_id %q must be 1-64 of A-Z a-z 0-9 _ . -", m.Name, m.MerchantID)
	}
	base := ""
	switch m.Environment {
	case "test":
		base = TestURL
	case "production":
		base = ProductionURL
	default:
		return nil, fmt.Errorf("merchant %s: environment %q must be test or production", m.Name, m.Environment)
	}
	if m.APIURL != "" {
		base = m.APIURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("merchant %s: api_url %q is not an http(s) base URL without a path", m.Name, base)
	}
	if m.Environment == "production" && u.Scheme != "https" {
		return nil, fmt.Errorf("merchant %s: api_url must be https in production", m.Name)
	}
	if m.APIKeyID == "" || len(m.APIKeyID) > 128 || strings.ContainsAny(m.APIKeyID, ": \r\n") {
		return nil, fmt.Errorf("merchant %s: api_key_id must be 1-128 characters without ':' or spaces", m.Name)
	}
	if len(m.APISecret) < 8 {
		return nil, fmt.Errorf("merchant %s: api_secret too short", m.Name)
	}
	if len(m.WebhookKeys) == 0 {
		return nil, fmt.Errorf("merchant %s: no webhook_keys", m.Name)
	}
	keys := make(map[string]string, len(m.WebhookKeys))
	for k, v := range m.WebhookKeys {
		if !reKeyID.MatchString(k) {
			return nil, fmt.Errorf("merchant %s: webhook key id %q must be 1-128 of A-Z a-z 0-9 _ . -", m.Name, k)
		}
		if len(v) < 8 {
			return nil, fmt.Errorf("merchant %s: webhook key %s: secret too short", m.Name, k)
		}
		keys[k] = v
	}
	m.WebhookKeys = keys
	switch m.AuthorizationMode {
	case "":
		m.AuthorizationMode = "SALE"
	case "SALE", "FINAL_AUTHORIZATION", "PRE_AUTHORIZATION":
	default:
		return nil, fmt.Errorf("merchant %s: authorization_mode %q must be SALE, FINAL_AUTHORIZATION or PRE_AUTHORIZATION", m.Name, m.AuthorizationMode)
	}
	if m.SessionTimeout == 0 {
		m.SessionTimeout = DefaultSessionTimeout
	}
	if m.SessionTimeout < 1 || m.SessionTimeout > 1440 {
		return nil, fmt.Errorf("merchant %s: session_timeout must be 1..1440 minutes", m.Name)
	}
	if len(m.Variant) > 64 {
		return nil, fmt.Errorf("merchant %s: variant longer than 64 characters", m.Name)
	}
	m.ep = direct.Endpoint{BaseURL: strings.TrimRight(base, "/"), MerchantID: m.MerchantID,
		Creds: direct.Credentials{KeyID: m.APIKeyID, Secret: m.APISecret}}
	return m, nil
}
