// Package keys generates, stores and prints the subscriber's EBICS keys:
// the signature key (A005/A006), the authentication key (X002) and the
// encryption key (E002), with self-signed or CA-issued X.509 certificates,
// sealed at rest with scrypt + AES-256-GCM, and the initialisation letter.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// MinBits is the minimum RSA key size accepted.
const MinBits = 2048

// Key is one RSA key pair with its optional certificate.
type Key struct {
	Version string // A005/A006, X002, E002
	Private *rsa.PrivateKey
	Cert    *x509.Certificate
}

// Pub returns the key as protocol.PubKey.
func (k *Key) Pub() protocol.PubKey {
	return protocol.PubKey{Version: k.Version, Key: &k.Private.PublicKey, Cert: k.Cert}
}

// Set is a subscriber's three keys.
type Set struct {
	PartnerID string
	UserID    string
	Signature *Key
	Auth      *Key
	Enc       *Key
	Created   time.Time
}

// Options control key generation.
type Options struct {
	Bits         int    // default 2048
	SigVersion   string // A005 or A006 (default A006)
	SelfSigned   bool   // create self-signed certificates
	CommonName   string // certificate subject CN (default the UserID)
	Organization string
	Validity     time.Duration // default 5 years
}

// Generate creates a new key set.
func Generate(partnerID, userID string, o Options) (*Set, error) {
	if o.Bits == 0 {
		o.Bits = MinBits
	}
	if o.Bits < MinBits {
		return nil, fmt.Errorf("ebics keys: %d bits is below the %d minimum", o.Bits, MinBits)
	}
	if o.SigVersion == "" {
		o.SigVersion = protocol.A006
	}
	if o.SigVersion != protocol.A005 && o.SigVersion != protocol.A006 {
		return nil, fmt.Errorf("ebics keys: signature version %q", o.SigVersion)
	}
	s := &Set{PartnerID: partnerID, UserID: userID, Created: time.Now().UTC()}
	for _, spec := range []struct {
		dst     **Key
		version string
		usage   x509.KeyUsage
	}{
		{&s.Signature, o.SigVersion, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
		{&s.Auth, "X002", x509.KeyUsageDigitalSignature},
		{&s.Enc, "E002", x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment},
	} {
		priv, err := rsa.GenerateKey(rand.Reader, o.Bits)
		if err != nil {
			return nil, fmt.Errorf("ebics keys: generate %s: %w", spec.version, err)
		}
		k := &Key{Version: spec.version, Private: priv}
		if o.SelfSigned {
			cn := o.CommonName
			if cn == "" {
				cn = userID
			}
			k.Cert, err = SelfSign(priv, cn+" "+spec.version, o.Organization, spec.usage, o.Validity)
			if err != nil {
				return nil, err
			}
		}
		*spec.dst = k
	}
	return s, nil
}

// SelfSign creates a self-signed certificate for priv.
func SelfSign(priv *rsa.PrivateKey, cn, org string, usage x509.KeyUsage, validity time.Duration) (*x509.Certificate, error) {
	if validity == 0 {
		validity = 5 * 365 * 24 * time.Hour
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: nonEmpty(org)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              usage,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("ebics keys: self-sign %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// ImportCertificate attaches a CA-issued certificate (PEM or DER) to key
// k after checking it certifies k's public key.
func ImportCertificate(k *Key, data []byte) error {
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		return fmt.Errorf("ebics keys: import certificate for %s: %w", k.Version, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.Cmp(k.Private.N) != 0 || pub.E != k.Private.E {
		return fmt.Errorf("ebics keys: certificate for %s does not match the key", k.Version)
	}
	k.Cert = cert
	return nil
}

// ---------------------------------------------------------------------------
// sealing

type storedKey struct {
	Version string `json:"version"`
	PKCS8   []byte `json:"pkcs8"`
	Cert    []byte `json:"cert,omitempty"`
}

type storedSet struct {
	PartnerID string    `json:"partner_id"`
	UserID    string    `json:"user_id"`
	Created   time.Time `json:"created"`
	Keys      []storedKey
}

// Sealed is the at-rest form: scrypt(N=2^15,r=8,p=1) derives an AES-256-GCM
// key from the passphrase.
type Sealed struct {
	Format string `json:"format"` // "acquit-ebics-keys-v1"
	Salt   []byte `json:"salt"`
	N      int    `json:"n"`
	Nonce  []byte `json:"nonce"`
	Data   []byte `json:"data"`
}

// ErrPassphrase is returned when sealed keys cannot be opened.
var ErrPassphrase = errors.New("ebics keys: wrong passphrase or corrupted key file")

// Seal encrypts the key set with the passphrase.
func Seal(s *Set, passphrase []byte) ([]byte, error) {
	if len(passphrase) < 8 {
		return nil, fmt.Errorf("ebics keys: passphrase shorter than 8 bytes")
	}
	st := storedSet{PartnerID: s.PartnerID, UserID: s.UserID, Created: s.Created}
	for _, k := range []*Key{s.Signature, s.Auth, s.Enc} {
		der, err := x509.MarshalPKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, err
		}
		sk := storedKey{Version: k.Version, PKCS8: der}
		if k.Cert != nil {
			sk.Cert = k.Cert.Raw
		}
		st.Keys = append(st.Keys, sk)
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	sealed := Sealed{Format: "acquit-ebics-keys-v1", Salt: make([]byte, 16), N: 1 << 15, Nonce: make([]byte, 12)}
	rand.Read(sealed.Salt)
	rand.Read(sealed.Nonce)
	gcm, err := gcmFor(passphrase, sealed.Salt, sealed.N)
	if err != nil {
		return nil, err
	}
	sealed.Data = gcm.Seal(nil, sealed.Nonce, plain, []byte(sealed.Format))
	return json.Marshal(sealed)
}

func gcmFor(pass, salt []byte, n int) (cipher.AEAD, error) {
	key, err := scrypt.Key(pass, salt, n, 8, 1, 32)
	// scrypt's work area (128*N*r bytes: 32 MiB at N=2^15) is garbage now:
	// collect it before anything else allocates, so that two derivations
	// in a row (seal then open, or two banks) reuse one area instead of
	// stacking two in the process's peak RSS (the plugin's bound is 64 MB).
	runtime.GC()
	if err != nil {
		return nil, fmt.Errorf("ebics keys: scrypt: %w", err)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Open decrypts a sealed key set.
func Open(data, passphrase []byte) (*Set, error) {
	var sealed Sealed
	if err := json.Unmarshal(data, &sealed); err != nil || sealed.Format != "acquit-ebics-keys-v1" {
		return nil, ErrPassphrase
	}
	if sealed.N < 1<<14 || sealed.N > 1<<20 || len(sealed.Nonce) != 12 {
		return nil, ErrPassphrase
	}
	gcm, err := gcmFor(passphrase, sealed.Salt, sealed.N)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, sealed.Nonce, sealed.Data, []byte(sealed.Format))
	if err != nil {
		return nil, ErrPassphrase
	}
	var st storedSet
	if err := json.Unmarshal(plain, &st); err != nil || len(st.Keys) != 3 {
		return nil, ErrPassphrase
	}
	s := &Set{PartnerID: st.PartnerID, UserID: st.UserID, Created: st.Created}
	dst := []**Key{&s.Signature, &s.Auth, &s.Enc}
	for i, sk := range st.Keys {
		pk, err := x509.ParsePKCS8PrivateKey(sk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("ebics keys: %s: %w", sk.Version, err)
		}
		priv, ok := pk.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("ebics keys: %s is not RSA", sk.Version)
		}
		k := &Key{Version: sk.Version, Private: priv}
		if sk.Cert != nil {
			if k.Cert, err = x509.ParseCertificate(sk.Cert); err != nil {
				return nil, fmt.Errorf("ebics keys: %s certificate: %w", sk.Version, err)
			}
		}
		*dst[i] = k
	}
	return s, nil
}

// ReadPassphrase reads a passphrase from a secret file (trailing newline
// removed).
func ReadPassphrase(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ebics keys: passphrase file: %w", err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}
