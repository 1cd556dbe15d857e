package client

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/sdk"
)

// Bank is one bank connection.
type Bank struct {
	Name      string
	URL       string
	HostID    string
	PartnerID string
	UserID    string
	Profile   Profile
	// BankAuthHash and BankEncHash are the bank's X002 and E002 key hashes
	// as printed in the bank's letter (hex, spaces allowed). HPB keys that
	// do not match are refused: no trust on first use.
	BankAuthHash string
	BankEncHash  string
}

// Options tune a client.
type Options struct {
	HTTP    *http.Client
	Logger  zerolog.Logger
	WorkDir string // spool directory for uploads (default os.TempDir())
	// Retries of one request on network errors and 061099 (default 3).
	Retries int
	// RetryWait is the wait between retries (default 500 ms).
	RetryWait time.Duration
	// MaxDownload caps a decompressed download held in memory (Download,
	// default 512 MiB) and a DownloadFile given no limit of its own.
	MaxDownload int64
	// DeflateWorkers is the number of goroutines compressing an upload
	// (0: DefaultDeflateWorkers, GOMAXPROCS at most MaxDeflateWorkers; 1:
	// one zlib stream in the reading goroutine, which also hashes the
	// file). With more, the file is compressed in 1 MiB blocks in parallel
	// into one zlib stream while the reading goroutine hashes it.
	DeflateWorkers int
}

// Client talks EBICS to one bank for one subscriber.
type Client struct {
	bank    Bank
	version protocol.Version
	keys    *keys.Set
	host    sdk.Host
	o       Options
	log     zerolog.Logger

	redirects atomic.Int64 // redirects refused

	mu      sync.Mutex // guards bankKey
	bankKey *BankKeys
	// uploads holds one mutex per upload id: a second Upload of the same
	// file waits for the first instead of racing it to the bank.
	uploads sync.Map
}

// bankKeys returns the bank's keys once fetched (HPB) or loaded, else nil.
func (c *Client) bankKeys() *BankKeys {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bankKey
}

func (c *Client) setBK(bk *BankKeys) {
	c.mu.Lock()
	c.bankKey = bk
	c.mu.Unlock()
}

// BankKeys are the bank's verified public keys.
type BankKeys struct {
	Auth protocol.PubKey
	Enc  protocol.PubKey
}

// TrustError is returned when the bank's keys do not match the hashes from
// its letter (or no hashes are configured).
type TrustError struct {
	Which          string // "authentication" / "encryption"
	Want, Got      string
	NotConfigured  bool
	BankAuthDigest string
	BankEncDigest  string
}

// Error implements error.
func (e *TrustError) Error() string {
	if e.NotConfigured {
		return fmt.Sprintf("ebics HPB: bank key hashes not configured; compare with the bank's letter and configure bank_auth_hash=%q bank_enc_hash=%q", e.BankAuthDigest, e.BankEncDigest)
	}
	return fmt.Sprintf("ebics HPB: bank %s key hash %s does not match the letter's %s", e.Which, e.Got, e.Want)
}

// New creates a client. ks may be nil for status-only use.
func New(bank Bank, ks *keys.Set, host sdk.Host, o Options) (*Client, error) {
	v, err := protocol.ParseVersion(bank.Profile.Version)
	if err != nil {
		return nil, err
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 2 * time.Minute}
	}
	// EBICS requests are never redirected: a bank (or whoever answers in
	// its name) answering 3xx could otherwise make the client re-POST a
	// signed request anywhere, the daemon's own admin API included. The
	// redirect comes back as the response and post refuses it.
	hc := *o.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTP = &hc
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.RetryWait == 0 {
		o.RetryWait = 500 * time.Millisecond
	}
	if o.MaxDownload == 0 {
		o.MaxDownload = 512 << 20
	}
	if bank.Profile.SegmentSize == 0 {
		bank.Profile.SegmentSize = DefaultSegmentSize
	}
	if o.DeflateWorkers < 0 || o.DeflateWorkers > MaxDeflateWorkers {
		return nil, fmt.Errorf("ebics client: deflate workers %d not in 0..%d", o.DeflateWorkers, MaxDeflateWorkers)
	}
	return &Client{bank: bank, version: v, keys: ks, host: host, o: o, log: o.Logger.With().Str("bank", bank.Name).Logger()}, nil
}

// RedirectsRefused counts the bank's answers that were redirects (3xx),
// each refused as a transport error.
func (c *Client) RedirectsRefused() int64 { return c.redirects.Load() }

// NetError is a transport failure (connection refused/dropped, HTTP status).
type NetError struct {
	Op  string
	Err error
}

// Error implements error.
func (e *NetError) Error() string { return fmt.Sprintf("ebics %s: transport: %v", e.Op, e.Err) }

// Unwrap returns the cause.
func (e *NetError) Unwrap() error { return e.Err }

func (c *Client) post(ctx context.Context, op string, body []byte) ([]byte, error) {
	return c.postBody(ctx, op, bytes.NewReader(body), int64(len(body)))
}

// postBody posts size bytes read from body (streamed, not buffered).
func (c *Client) postBody(ctx context.Context, op string, body io.Reader, size int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.bank.URL, body)
	if err != nil {
		return nil, &NetError{op, err}
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return nil, &NetError{op, err}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		n := c.redirects.Add(1)
		loc := resp.Header.Get("Location")
		c.log.Warn().Str("op", op).Int("status", resp.StatusCode).Str("location", loc).Int64("redirects_refused", n).
			Msg("ebics: the bank answered a redirect; refused (EBICS requests are never redirected)")
		return nil, &NetError{op, fmt.Errorf("redirect refused (HTTP %s to %q): EBICS requests are never redirected", resp.Status, loc)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &NetError{op, fmt.Errorf("HTTP %s", resp.Status)}
	}
	max := int64(2*c.bank.Profile.SegmentSize) + 16<<20
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &NetError{op, err}
	}
	if int64(len(b)) > max {
		return nil, &protocol.XMLError{Kind: "too_large", Detail: fmt.Sprintf("response above %d bytes", max)}
	}
	return b, nil
}

// exchange posts a request and parses (and for ebicsResponse, verifies)
// the answer; the returned error is the EBICS code as *protocol.Error.
func (c *Client) exchange(ctx context.Context, op string, r *protocol.Request) (*protocol.Response, error) {
	var auth *rsa.PrivateKey
	if r.Kind != protocol.KindUnsecured {
		auth = c.keys.Auth.Private
	}
	body, err := r.Marshal(auth)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: %w", op, err)
	}
	c.log.Debug().Str("op", op).Int("bytes", len(body)).Msg("ebics request")
	return c.exchangeBody(ctx, op, func() io.Reader { return bytes.NewReader(body) }, int64(len(body)))
}

// exchangeBody is exchange for a request already serialised: body returns
// a fresh reader of its size bytes for each attempt.
func (c *Client) exchangeBody(ctx context.Context, op string, body func() io.Reader, size int64) (*protocol.Response, error) {
	raw, err := c.postBody(ctx, op, body(), size)
	if err != nil {
		return nil, err
	}
	resp, doc, err := protocol.ParseResponse(raw, len(raw)+1)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: response: %w", op, err)
	}
	if resp.Version != c.version {
		return nil, fmt.Errorf("ebics %s: response version %s, want %s", op, resp.Version, c.version)
	}
	if bk := c.bankKeys(); resp.Kind == protocol.KindResponse && bk != nil {
		if err := protocol.VerifyAuth(doc, bk.Auth.Key, "DataEncryptionInfo", "ReturnCode", "TimestampBankParameter"); err != nil {
			return nil, fmt.Errorf("ebics %s: bank response: %w", op, err)
		}
	}
	if err := resp.Err(op); err != nil {
		return resp, err
	}
	return resp, nil
}

func (c *Client) base(kind, orderType string) *protocol.Request {
	return &protocol.Request{Version: c.version, Kind: kind, HostID: c.bank.HostID, Nonce: protocol.NewNonce(), Timestamp: time.Now().UTC(),
		PartnerID: c.bank.PartnerID, UserID: c.bank.UserID, OrderType: orderType}
}

// ---------------------------------------------------------------------------
// onboarding

// HEV asks the bank which EBICS versions it supports.
func (c *Client) HEV(ctx context.Context) (map[string]string, error) {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><ebicsHEVRequest xmlns="http://www.ebics.org/H000"><HostID>%s</HostID></ebicsHEVRequest>`, xmlEscape(c.bank.HostID))
	raw, err := c.post(ctx, "HEV", []byte(body))
	if err != nil {
		return nil, err
	}
	doc, err := protocol.ParseXML(raw, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("ebics HEV: %w", err)
	}
	root := doc.Root()
	if root.Tag != "ebicsHEVResponse" {
		return nil, fmt.Errorf("ebics HEV: %w", &protocol.XMLError{Kind: "unexpected", Detail: "root " + root.Tag})
	}
	if src := root.FindElement("SystemReturnCode/ReturnCode"); src != nil {
		if err := protocol.CodeError(strings.TrimSpace(src.Text()), "", "HEV"); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for _, vn := range root.SelectElements("VersionNumber") {
		out[vn.SelectAttrValue("ProtocolVersion", "")] = strings.TrimSpace(vn.Text())
	}
	return out, nil
}

func (c *Client) orderAttribute(download bool) string {
	if download {
		return "DZHNN"
	}
	return "OZHNN"
}

// INI sends the signature key.
func (c *Client) INI(ctx context.Context) error {
	od, err := protocol.SignaturePubKeyOrderData(c.version, c.keys.Signature.Pub(), c.bank.PartnerID, c.bank.UserID)
	if err != nil {
		return err
	}
	r := c.base(protocol.KindUnsecured, "INI")
	r.OrderAttrib = "DZNNN"
	r.OrderData = base64.StdEncoding.EncodeToString(protocol.Deflate(od))
	_, err = c.exchange(ctx, "INI", r)
	return err
}

// HIA sends the authentication and encryption keys.
func (c *Client) HIA(ctx context.Context) error {
	od, err := protocol.HIARequestOrderData(c.version, c.keys.Auth.Pub(), c.keys.Enc.Pub(), c.bank.PartnerID, c.bank.UserID)
	if err != nil {
		return err
	}
	r := c.base(protocol.KindUnsecured, "HIA")
	r.OrderAttrib = "DZNNN"
	r.OrderData = base64.StdEncoding.EncodeToString(protocol.Deflate(od))
	_, err = c.exchange(ctx, "HIA", r)
	return err
}

type storedBankKeys struct {
	AuthCert []byte `json:"auth_cert,omitempty"`
	AuthPub  []byte `json:"auth_pub"`
	EncCert  []byte `json:"enc_cert,omitempty"`
	EncPub   []byte `json:"enc_pub"`
}

func (c *Client) stateKey(parts ...string) string {
	return "ebics/" + c.bank.Name + "/" + strings.Join(parts, "/")
}

// HPB downloads the bank's keys and checks their hashes against the
// letter's. Only matching keys are stored and used. With no configured
// hashes it returns a *TrustError carrying the hashes to compare.
func (c *Client) HPB(ctx context.Context) (*BankKeys, error) {
	r := c.base(protocol.KindNoPubKeyDigests, "HPB")
	r.OrderAttrib = "DZHNN"
	resp, err := c.exchange(ctx, "HPB", r)
	if err != nil {
		return nil, err
	}
	plain, err := c.decryptOrderData("HPB", resp.TransactionKey, resp.OrderData)
	if err != nil {
		return nil, err
	}
	kod, err := protocol.ParseKeyOrderData(plain)
	if err != nil {
		return nil, fmt.Errorf("ebics HPB: %w", err)
	}
	if kod.Kind != "HPBResponseOrderData" || kod.Auth.Version != "X002" || kod.Enc.Version != "E002" {
		return nil, fmt.Errorf("ebics HPB: unexpected order data %s (%s/%s)", kod.Kind, kod.Auth.Version, kod.Enc.Version)
	}
	bk := &BankKeys{Auth: *kod.Auth, Enc: *kod.Enc}
	if err := c.checkTrust(bk, c.bank.BankAuthHash, c.bank.BankEncHash); err != nil {
		return bk, err
	}
	return bk, c.storeBankKeys(ctx, bk)
}

// AcceptBankKeys stores bank keys that HPB returned unverified (no hashes
// configured) once they match the hashes the operator read on the bank's
// letter. A mismatch is a *TrustError and nothing is stored.
func (c *Client) AcceptBankKeys(ctx context.Context, bk *BankKeys, authHash, encHash string) error {
	if authHash == "" || encHash == "" {
		return errors.New("ebics: both the authentication and the encryption hash of the bank's letter are needed")
	}
	if err := c.checkTrust(bk, authHash, encHash); err != nil {
		return err
	}
	return c.storeBankKeys(ctx, bk)
}

func (c *Client) storeBankKeys(ctx context.Context, bk *BankKeys) error {
	st := storedBankKeys{AuthPub: x509.MarshalPKCS1PublicKey(bk.Auth.Key), EncPub: x509.MarshalPKCS1PublicKey(bk.Enc.Key)}
	if bk.Auth.Cert != nil {
		st.AuthCert = bk.Auth.Cert.Raw
	}
	if bk.Enc.Cert != nil {
		st.EncCert = bk.Enc.Cert.Raw
	}
	if err := c.putJSON(ctx, c.stateKey("bankkeys"), st); err != nil {
		return err
	}
	c.setBK(bk)
	c.log.Info().Str("auth_hash", hex.EncodeToString(bk.Auth.Digest(c.version))).Msg("ebics bank keys verified and stored")
	return nil
}

// checkTrust compares the bank's keys with the hashes of its letter.
func (c *Client) checkTrust(bk *BankKeys, authHash, encHash string) error {
	gotA := bk.Auth.Digest(c.version)
	gotE := bk.Enc.Digest(c.version)
	te := &TrustError{BankAuthDigest: protocol.FormatHash(gotA), BankEncDigest: protocol.FormatHash(gotE)}
	if authHash == "" || encHash == "" {
		te.NotConfigured = true
		return te
	}
	for _, x := range []struct {
		which, conf string
		got         []byte
	}{{"authentication", authHash, gotA}, {"encryption", encHash, gotE}} {
		want, err := protocol.ParseHash(x.conf)
		if err != nil {
			return err
		}
		if !bytes.Equal(want, x.got) {
			te.Which, te.Want, te.Got = x.which, protocol.FormatHash(want), protocol.FormatHash(x.got)
			return te
		}
	}
	return nil
}

// LoadBankKeys loads the bank keys stored by a successful HPB and checks
// them against the configured hashes again.
func (c *Client) LoadBankKeys(ctx context.Context) (*BankKeys, error) {
	if bk := c.bankKeys(); bk != nil {
		return bk, nil
	}
	var st storedBankKeys
	ok, err := c.getJSON(ctx, c.stateKey("bankkeys"), &st)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("ebics %s: bank keys not fetched yet (run fetch-bank-keys)", c.bank.Name)
	}
	load := func(pub, cert []byte, version string) (protocol.PubKey, error) {
		k := protocol.PubKey{Version: version}
		var err error
		if k.Key, err = x509.ParsePKCS1PublicKey(pub); err != nil {
			return k, err
		}
		if cert != nil {
			k.Cert, err = x509.ParseCertificate(cert)
		}
		return k, err
	}
	bk := &BankKeys{}
	if bk.Auth, err = load(st.AuthPub, st.AuthCert, "X002"); err != nil {
		return nil, fmt.Errorf("ebics stored bank keys: %w", err)
	}
	if bk.Enc, err = load(st.EncPub, st.EncCert, "E002"); err != nil {
		return nil, fmt.Errorf("ebics stored bank keys: %w", err)
	}
	// Keys stored after the operator checked them against the letter
	// (AcceptBankKeys) are trusted as stored; configured hashes are
	// checked every time, so changing them in the configuration takes
	// effect.
	if c.bank.BankAuthHash != "" || c.bank.BankEncHash != "" {
		if err := c.checkTrust(bk, c.bank.BankAuthHash, c.bank.BankEncHash); err != nil {
			return nil, err
		}
	}
	c.setBK(bk)
	return bk, nil
}

func (c *Client) decryptOrderData(op string, wrapped []byte, segments ...string) ([]byte, error) {
	key, err := protocol.UnwrapKey(c.keys.Enc.Private, wrapped)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: %w", op, err)
	}
	// Segments are decoded as one stream (they are cut in the base64 text),
	// without building the joined text, the ciphertext or the compressed
	// data in memory.
	plain, err := protocol.DecodeOrderData(segments, key, c.o.MaxDownload)
	if err != nil {
		return nil, fmt.Errorf("ebics %s: order data: %w", op, err)
	}
	return plain, nil
}

// ---------------------------------------------------------------------------
// state helpers

func (c *Client) getJSON(ctx context.Context, key string, v any) (bool, error) {
	b, _, err := c.host.StateGet(ctx, key)
	if err != nil {
		return false, fmt.Errorf("ebics state %s: %w", key, err)
	}
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("ebics state %s: %w", key, err)
	}
	return true, nil
}

// putJSON stores v under key, overwriting whatever version is there.
func (c *Client) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.putRaw(ctx, key, b)
}

// putRaw stores b under key, overwriting whatever version is there.
func (c *Client) putRaw(ctx context.Context, key string, b []byte) error {
	for i := 0; i < 5; i++ {
		_, ver, err := c.host.StateGet(ctx, key)
		if err != nil {
			return fmt.Errorf("ebics state %s: %w", key, err)
		}
		if _, err = c.host.StatePut(ctx, key, b, ver); err == nil {
			return nil
		} else if !errors.Is(err, sdk.ErrConflict) {
			return fmt.Errorf("ebics state %s: %w", key, err)
		}
	}
	return fmt.Errorf("ebics state %s: %w", key, sdk.ErrConflict)
}

// OrderIDFor formats the n-th (1-based) order id of EBICS 2.5: a letter then
// three base-36 characters, A000..Z-ZZZ; counters wrap after 1,213,056.
func OrderIDFor(n int64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	n = (n - 1) % (26 * 36 * 36 * 36)
	b := []byte{byte('A' + n/46656), digits[(n/1296)%36], digits[(n/36)%36], digits[n%36]}
	return string(b)
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func sha256hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
