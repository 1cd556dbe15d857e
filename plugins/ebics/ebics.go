// Package ebics is acquit's EBICS bank transport plugin: it implements
// sdk.BankTransport on top of plugins/ebics/client for any number of banks
// configured with a dialect profile (fr, de, v3 or custom).
package ebics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// BankSettings configures one bank in the plugin settings JSON.
type BankSettings struct {
	URL       string `json:"url"`
	HostID    string `json:"host_id"`
	PartnerID string `json:"partner_id"`
	UserID    string `json:"user_id"`
	BankName  string `json:"bank_name,omitempty"`
	// Profile names a shipped profile (fr, de, v3) used as the base.
	Profile string `json:"profile"`
	// Overrides overlays the base profile (any Profile field, functions
	// merged by name).
	Overrides client.Profile `json:"overrides,omitempty"`
	// BankAuthHash / BankEncHash come from the bank's letter.
	BankAuthHash string `json:"bank_auth_hash,omitempty"`
	BankEncHash  string `json:"bank_enc_hash,omitempty"`
	// KeysPassphrase (resolved secret) or KeysPassphraseFile unlocks the
	// subscriber keys stored sealed in the daemon's state.
	KeysPassphrase     string `json:"keys_passphrase,omitempty"`
	KeysPassphraseFile string `json:"keys_passphrase_file,omitempty"`
	// Language of the initialisation letter: fr, de, en.
	Language string `json:"language,omitempty"`
}

// Settings is the plugin settings block.
type Settings struct {
	WorkDir string                  `json:"work_dir,omitempty"`
	Banks   map[string]BankSettings `json:"banks"`
	// TimeoutSeconds bounds one HTTP exchange (default 120).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// DeflateWorkers is the number of goroutines compressing an upload
	// (0 or absent: the plugin's GOMAXPROCS, at most 8; 1: one zlib stream,
	// one core). See client.Options.DeflateWorkers.
	DeflateWorkers int `json:"deflate_workers,omitempty"`
}

// configuredBank is one bank of the settings with what the plugin built for
// it: the client, once its keys are loaded, and the keys.
type configuredBank struct {
	set     BankSettings
	bank    client.Bank
	pass    []byte
	keys    *keys.Set
	client  *client.Client
	version protocol.Version
}

// Plugin implements sdk.BankTransport.
type Plugin struct {
	mu    sync.Mutex
	host  sdk.Host
	set   Settings
	banks map[string]*configuredBank
	log   zerolog.Logger
}

var _ sdk.BankTransport = (*Plugin)(nil)

// New returns an unconfigured plugin logging to stderr.
func New() *Plugin {
	return &Plugin{log: zerolog.New(os.Stderr).With().Timestamp().Str("plugin", "ebics").Logger()}
}

// WithLogger sets the logger.
func (p *Plugin) WithLogger(l zerolog.Logger) *Plugin { p.log = l; return p }

// ConfigSchema is the JSON Schema of Settings.
const ConfigSchema = `{"type":"object","required":["banks"],"properties":{
"work_dir":{"type":"string"},"timeout_seconds":{"type":"integer","minimum":1},"deflate_workers":{"type":"integer","minimum":0,"maximum":8},
"banks":{"type":"object","additionalProperties":{"type":"object","required":["url","host_id","partner_id","user_id","profile"],"properties":{
"url":{"type":"string"},"host_id":{"type":"string"},"partner_id":{"type":"string"},"user_id":{"type":"string"},"bank_name":{"type":"string"},
"profile":{"enum":["fr","de","v3"]},"overrides":{"type":"object"},"bank_auth_hash":{"type":"string"},"bank_enc_hash":{"type":"string"},
"keys_passphrase":{"type":"string"},"keys_passphrase_file":{"type":"string"},"language":{"enum":["fr","de","en"]}}}}}}`

// Describe implements sdk.Plugin.
func (p *Plugin) Describe(ctx context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "ebics", Version: Version, Kind: sdk.KindBankTransport, ConfigSchema: ConfigSchema}, nil
}

// Configure implements sdk.Plugin.
func (p *Plugin) Configure(ctx context.Context, raw []byte, host sdk.Host) error {
	var s Settings
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("ebics settings: %w", err)
	}
	if len(s.Banks) == 0 {
		return fmt.Errorf("ebics settings: no banks")
	}
	if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = 120
	}
	if s.DeflateWorkers < 0 || s.DeflateWorkers > client.MaxDeflateWorkers {
		return fmt.Errorf("ebics settings: deflate_workers %d not in 0..%d", s.DeflateWorkers, client.MaxDeflateWorkers)
	}
	banks := map[string]*configuredBank{}
	for name, b := range s.Banks {
		prof, err := client.Resolve(b.Profile, b.Overrides)
		if err != nil {
			return fmt.Errorf("ebics bank %s: %w", name, err)
		}
		if b.URL == "" || b.HostID == "" || b.PartnerID == "" || b.UserID == "" {
			return fmt.Errorf("ebics bank %s: url, host_id, partner_id and user_id are required", name)
		}
		if err := checkURL(b.URL); err != nil {
			return fmt.Errorf("ebics bank %s: %w", name, err)
		}
		rt := &configuredBank{set: b, version: protocol.Version(prof.Version), bank: client.Bank{Name: name, URL: b.URL, HostID: b.HostID,
			PartnerID: b.PartnerID, UserID: b.UserID, Profile: prof, BankAuthHash: b.BankAuthHash, BankEncHash: b.BankEncHash}}
		switch {
		case b.KeysPassphrase != "":
			rt.pass = []byte(b.KeysPassphrase)
		case b.KeysPassphraseFile != "":
			if rt.pass, err = keys.ReadPassphrase(b.KeysPassphraseFile); err != nil {
				return fmt.Errorf("ebics bank %s: %w", name, err)
			}
		default:
			return fmt.Errorf("ebics bank %s: keys_passphrase or keys_passphrase_file required", name)
		}
		banks[name] = rt
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.host, p.set, p.banks = host, s, banks
	p.log.Info().Int("banks", len(banks)).Msg("ebics configured")
	return nil
}

// Health implements sdk.Plugin.
func (p *Plugin) Health(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.banks == nil {
		return errors.New("ebics: not configured")
	}
	return nil
}

func (p *Plugin) bank(name string) (*configuredBank, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.banks[name]
	if b == nil {
		return nil, fmt.Errorf("ebics: unknown bank %q", name)
	}
	return b, nil
}

func (p *Plugin) keysKey(bank string) string { return "ebics/" + bank + "/keys" }

// clientFor returns the bank's client with its keys unlocked.
func (p *Plugin) clientFor(ctx context.Context, name string) (*configuredBank, error) {
	b, err := p.bank(name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.client != nil {
		return b, nil
	}
	sealed, _, err := p.host.StateGet(ctx, p.keysKey(name))
	if err != nil {
		return nil, fmt.Errorf("ebics %s: keys: %w", name, err)
	}
	if sealed == nil {
		return nil, fmt.Errorf("ebics %s: no keys yet (run: acquit ebics keys init --bank %s)", name, name)
	}
	ks, err := keys.Open(sealed, b.pass)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: %w", name, err)
	}
	cl, err := client.New(b.bank, ks, p.host, client.Options{Logger: p.log, WorkDir: p.set.WorkDir, DeflateWorkers: p.set.DeflateWorkers})
	if err != nil {
		return nil, err
	}
	b.keys, b.client = ks, cl
	return b, nil
}

// Upload implements sdk.BankTransport.
func (p *Plugin) Upload(ctx context.Context, req sdk.UploadRequest, progress func(sent, total int64)) (*sdk.UploadResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.clientFor(ctx, req.Bank)
	if err != nil {
		return nil, err
	}
	// The file must be the one the daemon registered: the client checks
	// its SHA-256 and size in the one read that spools it, before anything
	// is sent, and refuses a resumed upload recorded for another file. The
	// identifiers the daemon read at submission are passed on, so the file
	// is not parsed here again.
	res, err := b.client.Upload(ctx, client.UploadSpec{ID: req.TransmissionID, Function: req.Function, Path: req.Path, Progress: progress,
		SHA256: req.SHA256, Size: req.Size, Identifiers: req.Params})
	var fm *client.FileMismatchError
	if errors.As(err, &fm) {
		return nil, sdk.Reject(fm.Code, "%s", fm.Detail)
	}
	if err != nil {
		return nil, err
	}
	if req.SHA256 != "" && !strings.EqualFold(req.SHA256, res.FileSHA256) {
		// A resumed upload recorded another file under this TransmissionID.
		return nil, sdk.Reject("sha256_mismatch", "upload %s was recorded for file %s, not %s", req.TransmissionID, res.FileSHA256, req.SHA256)
	}
	return &sdk.UploadResult{OrderID: res.OrderID, TransactionID: res.TransactionID, Segments: res.Segments, Resumed: res.Resumed,
		ReturnCode: res.ReturnCode, ReturnText: res.ReturnText, Details: res.Details}, nil
}

// Download implements sdk.BankTransport; it returns at most one document
// per call (call again until NoData).
func (p *Plugin) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.clientFor(ctx, req.Bank)
	if err != nil {
		return nil, err
	}
	// With a spool directory (the daemon's), the document is decoded
	// segment by segment into a file there and handed over by path: any
	// size, bounded by req.MaxSize and the disk. Without one (a caller
	// predating SpoolDir), it comes as Content, in memory and within one
	// RPC message.
	var d *client.Downloaded
	if req.SpoolDir != "" {
		d, err = b.client.DownloadFile(ctx, req.Function, req.From, req.To, req.SpoolDir, req.MaxSize)
	} else {
		d, err = b.client.Download(ctx, req.Function, req.From, req.To)
	}
	var tl *client.TooLargeError
	if errors.As(err, &tl) && req.ReportTooLarge && req.MaxSize > 0 {
		// Over the daemon's limit: reported, not failed, so the daemon
		// records the refusal and confirms it, and the documents after
		// it come (sdk.Document.TooLarge).
		return &sdk.DownloadResult{Documents: []sdk.Document{{DownloadID: tl.TransactionID, Function: req.Function,
			Name: fmt.Sprintf("%s-%s-%s", req.Bank, req.Function, tl.TransactionID), Size: tl.Max + 1, TooLarge: true,
			Meta: map[string]string{"order_id": tl.OrderID, "order_type": tl.OrderType, "segments": fmt.Sprint(tl.Segments),
				"transaction_id": tl.TransactionID, "ebics_version": string(b.version), "profile": b.bank.Profile.Name}}}}, nil
	}
	if err != nil {
		return nil, err
	}
	if d == nil {
		return &sdk.DownloadResult{NoData: true}, nil
	}
	name := fmt.Sprintf("%s-%s-%s", req.Bank, req.Function, d.TransactionID)
	return &sdk.DownloadResult{Documents: []sdk.Document{{DownloadID: d.TransactionID, Function: d.Function, Format: d.Format, Name: name,
		Content: d.Content, Path: d.Path, Size: d.Size, SHA256: d.SHA256, Meta: p.docMeta(b, d)}}}, nil
}

func (p *Plugin) docMeta(b *configuredBank, d *client.Downloaded) map[string]string {
	m := map[string]string{"sha256": d.SHA256, "order_id": d.OrderID, "segments": fmt.Sprint(d.Segments), "transaction_id": d.TransactionID,
		"ebics_version": string(b.version), "profile": b.bank.Profile.Name}
	if d.Format == "ptk-text" && b.bank.Profile.PTKProfile != "" {
		m["ptk_profile"] = b.bank.Profile.PTKProfile // for daemon/acks.PTKProfileByName
	}
	return m
}

// Confirm implements sdk.BankTransport.
func (p *Plugin) Confirm(ctx context.Context, bank, downloadID string, ok bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := p.clientFor(ctx, bank)
	if err != nil {
		return err
	}
	return b.client.Receipt(ctx, downloadID, ok)
}

// Keys implements sdk.BankTransport: every sdk.KeyAction (check-profile is
// HAA against the bank's profile).
func (p *Plugin) Keys(ctx context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	b, err := p.bank(req.Bank)
	if err != nil {
		return nil, err
	}
	switch req.Action {
	case sdk.KeyInit:
		return p.keysInit(ctx, req, b)
	case sdk.KeyStatus:
		return p.keysStatus(ctx, req.Bank, b)
	}
	rt, err := p.clientFor(ctx, req.Bank)
	if err != nil {
		return nil, err
	}
	switch req.Action {
	case sdk.KeyLetter:
		lang := cmp.Or(req.Params["language"], b.set.Language, "en")
		li := keys.LetterInfo{Version: rt.version, BankName: cmp.Or(b.set.BankName, req.Bank), HostID: b.bank.HostID, Language: lang}
		pdf, err := rt.keys.LetterPDF(li)
		if err != nil {
			return nil, err
		}
		txt := rt.keys.LetterText(li)
		return &sdk.KeyResult{Status: "letter", Text: txt, Files: map[string][]byte{"letter.pdf": pdf, "letter.txt": []byte(txt)}}, nil
	case sdk.KeySend:
		if err := rt.client.INI(ctx); err != nil && !protocol.HasCode(err, protocol.CodeInvalidUserState) {
			return nil, fmt.Errorf("ebics %s INI: %w", req.Bank, err)
		}
		if err := rt.client.HIA(ctx); err != nil && !protocol.HasCode(err, protocol.CodeInvalidUserState) {
			return nil, fmt.Errorf("ebics %s HIA: %w", req.Bank, err)
		}
		p.putMeta(ctx, req.Bank, "sent", time.Now().UTC().Format(time.RFC3339))
		return &sdk.KeyResult{Status: "sent", Text: "INI and HIA sent; now sign the letter and send it to the bank, then run fetch-bank-keys once the bank has activated the access."}, nil
	case sdk.KeyFetchBankKeys:
		bk, err := rt.client.HPB(ctx)
		var te *client.TrustError
		if errors.As(err, &te) && te.NotConfigured && (req.Params["auth_hash"] != "" || req.Params["enc_hash"] != "") {
			// The operator typed the hashes of the bank's letter.
			err = rt.client.AcceptBankKeys(ctx, bk, req.Params["auth_hash"], req.Params["enc_hash"])
		}
		if errors.As(err, &te) && te.NotConfigured {
			return &sdk.KeyResult{Status: "unverified", Text: "Compare with the bank's letter, then set bank_auth_hash and bank_enc_hash:\nX002: " +
				te.BankAuthDigest + "\nE002: " + te.BankEncDigest + "\n", Meta: map[string]string{"bank_auth_hash": te.BankAuthDigest, "bank_enc_hash": te.BankEncDigest}}, nil
		}
		if err != nil {
			return nil, err
		}
		return &sdk.KeyResult{Status: "ready", Text: "bank keys verified against the letter and stored",
			Meta: map[string]string{"bank_auth_hash": protocol.FormatHash(bk.Auth.Digest(rt.version)), "bank_enc_hash": protocol.FormatHash(bk.Enc.Digest(rt.version))}}, nil
	case sdk.KeyCheckProfile:
		missing, err := rt.client.CheckProfile(ctx)
		if err != nil {
			return nil, err
		}
		if len(missing) == 0 {
			return &sdk.KeyResult{Status: "profile_ok", Text: "the bank offers every function of profile " + b.bank.Profile.Name + "\n"}, nil
		}
		return &sdk.KeyResult{Status: "profile_mismatch", Text: "not offered by the bank (HAA): " + strings.Join(missing, ", ") + "\n",
			Meta: map[string]string{"missing": strings.Join(missing, ",")}}, nil
	case sdk.KeyImportCert:
		var k *keys.Key
		switch req.Params["key"] {
		case "signature", rt.keys.Signature.Version:
			k = rt.keys.Signature
		case "authentication", "X002":
			k = rt.keys.Auth
		case "encryption", "E002":
			k = rt.keys.Enc
		default:
			return nil, fmt.Errorf("ebics import-cert: key must be signature, authentication or encryption")
		}
		if err := keys.ImportCertificate(k, []byte(req.Params["cert_pem"])); err != nil {
			return nil, err
		}
		if err := p.storeKeys(ctx, req.Bank, rt.keys, b.pass, true); err != nil {
			return nil, err
		}
		return &sdk.KeyResult{Status: "imported", Text: "certificate attached to the " + k.Version + " key"}, nil
	}
	return nil, fmt.Errorf("ebics keys: action %q: %w", req.Action, sdk.ErrUnsupported)
}

func (p *Plugin) storeKeys(ctx context.Context, bank string, ks *keys.Set, pass []byte, replace bool) error {
	sealed, err := keys.Seal(ks, pass)
	if err != nil {
		return err
	}
	_, ver, err := p.host.StateGet(ctx, p.keysKey(bank))
	if err != nil {
		return err
	}
	if ver != 0 && !replace {
		return fmt.Errorf("ebics %s: keys exist already (params force=true replaces them: the bank must then be re-initialised)", bank)
	}
	_, err = p.host.StatePut(ctx, p.keysKey(bank), sealed, ver)
	return err
}

func (p *Plugin) keysInit(ctx context.Context, req sdk.KeyRequest, b *configuredBank) (*sdk.KeyResult, error) {
	ks, err := keys.Generate(b.bank.PartnerID, b.bank.UserID, keys.Options{SigVersion: b.bank.Profile.SignatureVersion,
		SelfSigned: b.bank.Profile.CertMode != "none", CommonName: b.bank.UserID})
	if err != nil {
		return nil, err
	}
	if err := p.storeKeys(ctx, req.Bank, ks, b.pass, req.Params["force"] == "true"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	b.client, b.keys = nil, nil
	p.mu.Unlock()
	p.log.Info().Str("bank", req.Bank).Str("signature", ks.Signature.Version).Msg("ebics keys generated")
	return &sdk.KeyResult{Status: "generated", Text: fmt.Sprintf("keys generated (%s, X002, E002, 2048 bits); next: send, then letter", ks.Signature.Version)}, nil
}

func (p *Plugin) putMeta(ctx context.Context, bank, k, v string) {
	key := "ebics/" + bank + "/meta"
	raw, ver, err := p.host.StateGet(ctx, key)
	if err != nil {
		return
	}
	m := map[string]string{}
	if raw != nil {
		json.Unmarshal(raw, &m)
	}
	m[k] = v
	b, _ := json.Marshal(m)
	p.host.StatePut(ctx, key, b, ver)
}

func (p *Plugin) keysStatus(ctx context.Context, name string, b *configuredBank) (*sdk.KeyResult, error) {
	meta := map[string]string{"profile": b.bank.Profile.Name, "version": b.bank.Profile.Version, "host_id": b.bank.HostID}
	sealed, _, err := p.host.StateGet(ctx, p.keysKey(name))
	if err != nil {
		return nil, err
	}
	meta["keys"] = fmt.Sprint(sealed != nil)
	if raw, _, _ := p.host.StateGet(ctx, "ebics/"+name+"/meta"); raw != nil {
		var m map[string]string
		json.Unmarshal(raw, &m)
		for k, v := range m {
			meta[k] = v
		}
	}
	// Ask the bank which versions it speaks (HEV needs no keys).
	if cl, err := client.New(b.bank, nil, p.host, client.Options{Logger: p.log}); err == nil {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		versions, err := cl.HEV(hctx)
		cancel()
		if err != nil {
			meta["bank_hev"] = "error: " + err.Error()
		} else {
			var vs []string
			for v, n := range versions {
				vs = append(vs, v+"="+n)
			}
			sort.Strings(vs)
			meta["bank_hev"] = strings.Join(vs, " ")
			if _, ok := versions[b.bank.Profile.Version]; !ok {
				meta["bank_hev"] += " (profile version " + b.bank.Profile.Version + " not offered)"
			}
		}
	}
	bankKeys, _, _ := p.host.StateGet(ctx, "ebics/"+name+"/bankkeys")
	meta["bank_keys_verified"] = fmt.Sprint(bankKeys != nil)
	status := "no_keys"
	switch {
	case bankKeys != nil:
		status = "ready"
	case meta["sent"] != "":
		status = "sent"
	case sealed != nil:
		status = "keys_generated"
	}
	var lines []string
	for k, v := range meta {
		lines = append(lines, k+": "+v)
	}
	sort.Strings(lines)
	return &sdk.KeyResult{Status: status, Text: strings.Join(lines, "\n") + "\n", Meta: meta}, nil
}

// checkURL accepts https URLs, and plain http only on loopback (the
// simulator, a local proxy).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("url %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("url %q: plain http is only allowed on loopback", raw)
	}
	return fmt.Errorf("url %q: scheme must be https", raw)
}
