package testplugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/acquit/acquit/sdk"
)

// TransportName is what the transport reports in Describe.
const TransportName = "test-transport"

// MaxUploadSize is the largest file the test transport accepts.
const MaxUploadSize = 64 << 20

// TransportConfigSchema is the JSON Schema of the transport's settings.
const TransportConfigSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["bank_dir"],
  "properties": {
    "bank_dir": {"type": "string", "description": "directory standing for the bank: outbox/ receives uploads, inbox/ holds downloads"},
    "bank": {"type": "string", "description": "the bank name these settings stand for; when set, a request naming another bank is refused"},
    "provider_url": {"type": "string", "description": "tests only: an http(s) URL Download asks (with the call's context) before reading inbox/, standing for the bank's server"}
  }
}`

// TransportSettings is the transport's settings block.
type TransportSettings struct {
	BankDir string `json:"bank_dir"`
	// Bank, when set, is the only bank a request may name.
	Bank string `json:"bank,omitempty"`
	// ProviderURL, when set, is asked by Download before it reads inbox/
	// (see askProvider): sdk/plugintest points it at a server that never
	// answers to check that a cancelled Download abandons its request.
	ProviderURL string `json:"provider_url,omitempty"`
}

// checkBank refuses a request naming a bank the settings do not stand for.
func (s *TransportSettings) checkBank(bank string) error {
	if s.Bank != "" && bank != s.Bank {
		return sdk.Reject("unknown_bank", "bank %q is not configured (these settings are for %q)", bank, s.Bank)
	}
	return nil
}

// Transport is a BankTransport whose "bank" is a directory: uploads are
// copied to outbox/<order id>, downloads are the files of inbox/, a
// confirmed download moves to inbox/done/. Orders are idempotent on the
// transmission id through the daemon's Host state.
type Transport struct {
	mis Misbehaviour

	mu       sync.RWMutex
	settings *TransportSettings
	host     sdk.Host
}

var _ sdk.BankTransport = (*Transport)(nil)

// NewTransport returns an unconfigured transport.
func NewTransport(m Misbehaviour) *Transport { return &Transport{mis: m} }

func (t *Transport) misbehave(method string) { t.mis.apply(method) }

func (t *Transport) current() (*TransportSettings, sdk.Host, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.settings == nil {
		return nil, nil, ErrNotConfigured
	}
	return t.settings, t.host, nil
}

// Describe implements sdk.Plugin.
func (t *Transport) Describe(context.Context) (sdk.Info, error) {
	t.misbehave("Describe")
	return sdk.Info{Name: TransportName, Version: Version, Kind: sdk.KindBankTransport, ConfigSchema: TransportConfigSchema}, nil
}

// Configure implements sdk.Plugin.
func (t *Transport) Configure(_ context.Context, settings []byte, host sdk.Host) error {
	var s TransportSettings
	dec := json.NewDecoder(bytes.NewReader(settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("test transport settings: %w", err)
	}
	if !filepath.IsAbs(s.BankDir) {
		return fmt.Errorf("test transport settings: bank_dir %q is not absolute", s.BankDir)
	}
	if err := checkProviderURL(s.ProviderURL); err != nil {
		return fmt.Errorf("test transport settings: %w", err)
	}
	if host == nil {
		return errors.New("test transport settings: no host state offered")
	}
	for _, d := range []string{"outbox", "inbox", filepath.Join("inbox", "done")} {
		if err := os.MkdirAll(filepath.Join(s.BankDir, d), 0o700); err != nil {
			return fmt.Errorf("test transport settings: %w", err)
		}
	}
	t.mu.Lock()
	t.settings, t.host = &s, host
	t.mu.Unlock()
	return nil
}

// Health implements sdk.Plugin.
func (t *Transport) Health(context.Context) error {
	t.misbehave("Health")
	_, _, err := t.current()
	return err
}

// Upload implements sdk.BankTransport.
func (t *Transport) Upload(ctx context.Context, req sdk.UploadRequest, progress func(sent, total int64)) (*sdk.UploadResult, error) {
	t.misbehave("Upload")
	s, host, err := t.current()
	if err != nil {
		return nil, err
	}
	if err := s.checkBank(req.Bank); err != nil {
		return nil, err
	}
	if req.TransmissionID == "" || !filepath.IsAbs(req.Path) {
		return nil, sdk.Reject("bad_request", "transmission id empty or path %q not absolute", req.Path)
	}
	key := "upload/" + req.TransmissionID
	if b, ver, err := host.StateGet(ctx, key); err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	} else if ver != 0 {
		var res sdk.UploadResult
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("test transport upload %s: stored result: %w", req.TransmissionID, err)
		}
		res.Resumed = true
		return &res, nil
	}
	f, err := os.Open(req.Path)
	if err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &buf), io.LimitReader(f, MaxUploadSize+1))
	if err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	}
	if n > MaxUploadSize {
		return nil, sdk.Reject("too_large", "file exceeds %d bytes", MaxUploadSize)
	}
	if n != req.Size || hex.EncodeToString(h.Sum(nil)) != req.SHA256 {
		return nil, sdk.Reject("checksum_mismatch", "file has %d bytes and another digest than announced", n)
	}
	seq, err := host.NextSequence(ctx, "order")
	if err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	}
	order := fmt.Sprintf("T%03d", seq)
	const chunk = 1 << 10
	content := buf.Bytes()
	for sent := int64(0); sent < n; sent += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress(sent, n)
	}
	progress(n, n)
	if err := os.WriteFile(filepath.Join(s.BankDir, "outbox", order), content, 0o600); err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	}
	res := sdk.UploadResult{OrderID: order, TransactionID: "TX" + strconv.FormatInt(seq, 10), Segments: int(n/chunk) + 1, ReturnCode: "000000", ReturnText: "[EBICS_OK] OK"}
	b, _ := json.Marshal(res)
	if _, err := host.StatePut(ctx, key, b, 0); err != nil {
		return nil, fmt.Errorf("test transport upload %s: %w", req.TransmissionID, err)
	}
	return &res, nil
}

var downloadNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// Download implements sdk.BankTransport.
func (t *Transport) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	t.misbehave("Download")
	s, _, err := t.current()
	if err != nil {
		return nil, err
	}
	if err := s.checkBank(req.Bank); err != nil {
		return nil, err
	}
	if s.ProviderURL != "" {
		if err := askProvider(ctx, s.ProviderURL); err != nil {
			return nil, fmt.Errorf("test transport download: %w", err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.BankDir, "inbox"))
	if err != nil {
		return nil, fmt.Errorf("test transport download: %w", err)
	}
	res := &sdk.DownloadResult{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !downloadNameRE.MatchString(e.Name()) {
			continue
		}
		d := sdk.Document{DownloadID: e.Name(), Function: req.Function, Format: "raw", Name: e.Name()}
		if req.SpoolDir != "" {
			// The sdk's way for any size: a synced file in the daemon's
			// spool directory.
			d.Path, d.Size, d.SHA256, err = spool(filepath.Join(s.BankDir, "inbox", e.Name()), req.SpoolDir)
		} else {
			d.Content, err = os.ReadFile(filepath.Join(s.BankDir, "inbox", e.Name()))
		}
		if err != nil {
			return nil, fmt.Errorf("test transport download: %w", err)
		}
		res.Documents = append(res.Documents, d)
	}
	res.NoData = len(res.Documents) == 0
	return res, ctx.Err()
}

// spool copies the file src into a new file of dir, synced, and returns
// its path, size and SHA-256.
func spool(src, dir string) (string, int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, "doc-*")
	if err != nil {
		return "", 0, "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", 0, "", err
	}
	return out.Name(), n, hex.EncodeToString(h.Sum(nil)), nil
}

// Confirm implements sdk.BankTransport.
func (t *Transport) Confirm(_ context.Context, bank, downloadID string, ok bool) error {
	t.misbehave("Confirm")
	s, _, err := t.current()
	if err != nil {
		return err
	}
	if err := s.checkBank(bank); err != nil {
		return err
	}
	if !downloadNameRE.MatchString(downloadID) || downloadID == "." || downloadID == ".." {
		return sdk.Reject("bad_download_id", "download id %q", downloadID)
	}
	if !ok {
		return nil
	}
	from := filepath.Join(s.BankDir, "inbox", downloadID)
	if err := os.Rename(from, filepath.Join(s.BankDir, "inbox", "done", downloadID)); err != nil {
		return fmt.Errorf("test transport confirm %s: %w", downloadID, err)
	}
	return nil
}

// Keys implements sdk.BankTransport.
func (t *Transport) Keys(_ context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	t.misbehave("Keys")
	s, _, err := t.current()
	if err != nil {
		return nil, err
	}
	if err := s.checkBank(req.Bank); err != nil {
		return nil, err
	}
	if req.Action != sdk.KeyStatus && req.Action != sdk.KeyLetter {
		return nil, fmt.Errorf("test transport keys %q: %w", req.Action, sdk.ErrUnsupported)
	}
	return &sdk.KeyResult{Status: "ready", Text: "keys of " + req.Bank + " are ready", Files: map[string][]byte{"letter.txt": []byte("INI letter for " + req.Bank)}}, nil
}
