package protocol

import (
	"bytes"
	"compress/zlib"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"strings"
)

// CryptoError is returned when decryption, decompression, decoding or a
// signature check fails on outside input.
type CryptoError struct {
	Op  string // "decrypt", "unwrap", "inflate", "base64", "es_verify", ...
	Err error
}

// Error implements error.
func (e *CryptoError) Error() string { return fmt.Sprintf("ebics %s: %v", e.Op, e.Err) }

// Unwrap returns the cause.
func (e *CryptoError) Unwrap() error { return e.Err }

// ErrBadPadding is returned for E002 ciphertext with invalid padding.
var ErrBadPadding = errors.New("invalid E002 padding")

// ErrInflateLimit is returned when decompressed data exceeds the cap.
var ErrInflateLimit = errors.New("decompressed data exceeds the limit")

// NewTransactionKey returns a fresh random AES-128 transaction key.
func NewTransactionKey() []byte {
	k := make([]byte, 16)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// WrapKey encrypts the transaction key for the recipient's E002 key with RSA
// PKCS#1 v1.5, as E002 requires.
func WrapKey(pub *rsa.PublicKey, key []byte) ([]byte, error) {
	out, err := rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	if err != nil {
		return nil, fmt.Errorf("ebics wrap transaction key: %w", err)
	}
	return out, nil
}

// UnwrapKey decrypts a wrapped transaction key with the E002 private key.
func UnwrapKey(priv *rsa.PrivateKey, wrapped []byte) ([]byte, error) {
	key := make([]byte, 16)
	// Constant-time variant: a wrong key yields random bytes, caught later by
	// padding or inflate checks; a wrong length is reported.
	if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, wrapped, key); err != nil {
		return nil, &CryptoError{Op: "unwrap", Err: err}
	}
	return key, nil
}

// e002Writer encrypts with AES-128-CBC, zero IV, and ANSI X9.23 padding
// (padding bytes then one byte with the padding length; always 1..16 bytes)
// as E002 specifies.
type e002Writer struct {
	w   io.Writer
	cbc cipher.BlockMode
	buf []byte
	out []byte
}

// NewE002Writer returns a writer encrypting to w with the transaction key;
// Close writes the final padded block (it does not close w).
func NewE002Writer(w io.Writer, key []byte) (io.WriteCloser, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("ebics e002: %w", err)
	}
	return &e002Writer{w: w, cbc: cipher.NewCBCEncrypter(b, make([]byte, 16)), out: make([]byte, 32<<10)}, nil
}

// Write encrypts whole blocks and keeps the remainder.
func (e *e002Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(e.buf) == 0 && len(p) >= 16 {
			m := len(p) &^ 15
			if m > len(e.out) {
				m = len(e.out)
			}
			e.cbc.CryptBlocks(e.out[:m], p[:m])
			if _, err := e.w.Write(e.out[:m]); err != nil {
				return 0, err
			}
			p = p[m:]
			continue
		}
		take := 16 - len(e.buf)
		if take > len(p) {
			take = len(p)
		}
		e.buf = append(e.buf, p[:take]...)
		p = p[take:]
		if len(e.buf) == 16 {
			e.cbc.CryptBlocks(e.out[:16], e.buf)
			if _, err := e.w.Write(e.out[:16]); err != nil {
				return 0, err
			}
			e.buf = e.buf[:0]
		}
	}
	return n, nil
}

// Close pads and writes the last block.
func (e *e002Writer) Close() error {
	pad := 16 - len(e.buf)
	for i := 0; i < pad-1; i++ {
		e.buf = append(e.buf, 0)
	}
	e.buf = append(e.buf, byte(pad))
	e.cbc.CryptBlocks(e.out[:16], e.buf)
	_, err := e.w.Write(e.out[:16])
	return err
}

// EncryptE002 encrypts data with the transaction key (AES-128-CBC, zero IV,
// X9.23 padding).
func EncryptE002(key, data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := NewE002Writer(&b, key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// DecryptE002 decrypts E002 ciphertext and removes the padding (only the
// last byte, the padding length, is interpreted, so ISO 10126 random
// padding and X9.23 zero padding are both accepted).
func DecryptE002(key, data []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, &CryptoError{Op: "decrypt", Err: err}
	}
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, &CryptoError{Op: "decrypt", Err: fmt.Errorf("ciphertext length %d is not a positive multiple of 16", len(data))}
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(b, make([]byte, 16)).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad < 1 || pad > 16 {
		return nil, &CryptoError{Op: "decrypt", Err: ErrBadPadding}
	}
	return out[:len(out)-pad], nil
}

// Deflate compresses data with zlib (RFC 1950), as EBICS order data is.
func Deflate(data []byte) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// Inflate decompresses zlib data, refusing more than max bytes of output
// (decompression bombs).
func Inflate(data []byte, max int64) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, &CryptoError{Op: "inflate", Err: err}
	}
	defer r.Close()
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(r, max+1))
	if err != nil {
		return nil, &CryptoError{Op: "inflate", Err: err}
	}
	if n > max {
		return nil, &CryptoError{Op: "inflate", Err: ErrInflateLimit}
	}
	return b.Bytes(), nil
}

// DecodeBase64 decodes standard base64 (whitespace tolerated), with a typed
// error for truncated or invalid input.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\r', '\t':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &CryptoError{Op: "base64", Err: err}
	}
	return b, nil
}

// Signature versions for the ES.
const (
	A005 = "A005" // RSASSA-PKCS1-v1_5 over SHA-256
	A006 = "A006" // RSASSA-PSS over SHA-256
)

// DocumentDigest is the plain SHA-256 of a document, with no
// normalisation (see ESDigest for the digest the ES signs).
func DocumentDigest(doc []byte) []byte {
	h := sha256.Sum256(doc)
	return h[:]
}

// ESDigest is the SHA-256 of the order data as A005/A006 sign it (and as
// DataDigest carries it in EBICS 3.0): with strip, carriage return (0x0D),
// line feed (0x0A) and Ctrl-Z (0x1A) bytes are left out of the hash, as
// the EBICS electronic-signature data preparation prescribes and
// libeufin, ebics-java, epics, node-ebics-client and aqbanking (A005) do;
// without it the data is hashed as transmitted (ebics-client-php). The
// order data itself is always transmitted unchanged. See PROTOCOL.md.
func ESDigest(data []byte, strip bool) []byte {
	h := NewESHash(strip)
	h.Write(data)
	return h.Sum(nil)
}

// NewESHash returns a streaming SHA-256 computing ESDigest over whatever is
// written to it.
func NewESHash(strip bool) hash.Hash {
	if !strip {
		return sha256.New()
	}
	return &stripHash{Hash: sha256.New()}
}

// stripHash is a SHA-256 that ignores CR, LF and Ctrl-Z bytes.
type stripHash struct {
	hash.Hash
	buf []byte
}

// Write hashes p without its CR, LF and Ctrl-Z bytes.
// Text files have LFs every few dozen bytes and rarely a CR or Ctrl-Z:
// the runs between LFs are copied with memmove (IndexByte is vectorised),
// the byte loop only runs on blocks that hold a CR or a Ctrl-Z.
func (s *stripHash) Write(p []byte) (int, error) {
	s.buf = s.buf[:0]
	if bytes.IndexByte(p, '\r') < 0 && bytes.IndexByte(p, 0x1a) < 0 {
		for q := p; len(q) > 0; {
			i := bytes.IndexByte(q, '\n')
			if i < 0 {
				s.buf = append(s.buf, q...)
				break
			}
			s.buf = append(s.buf, q[:i]...)
			q = q[i+1:]
		}
	} else {
		for _, c := range p {
			if c != '\r' && c != '\n' && c != 0x1a {
				s.buf = append(s.buf, c)
			}
		}
	}
	s.Hash.Write(s.buf)
	return len(p), nil
}

// pssOpts: PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (A006).
var pssOpts = &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}

// esHashed returns the 32-byte value handed to the RSA padding for a
// version: A005 is EMSA-PKCS1-v1_5 whose DigestInfo carries the order
// data digest itself (RSASSA-PKCS1-v1_5/SHA-256 over the order data); A006
// is RSASSA-PSS/SHA-256 whose *message* is the 32-byte order data digest,
// so PSS hashes that digest again: mHash = SHA-256(digest). This is what
// libeufin-nexus (CryptoUtil.signEbicsA006 over digestEbicsOrderA006),
// ebics-client-php, epics and node-ebics-client send to production banks.
func esHashed(version string, digest []byte) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("ebics es: digest is %d bytes, want %d", len(digest), sha256.Size)
	}
	switch version {
	case A005:
		return digest, nil
	case A006:
		h := sha256.Sum256(digest)
		return h[:], nil
	}
	return nil, fmt.Errorf("ebics es: unsupported signature version %q", version)
}

// SignES signs an order data digest (ESDigest) with version A005 or A006.
func SignES(version string, priv *rsa.PrivateKey, digest []byte) ([]byte, error) {
	m, err := esHashed(version, digest)
	if err != nil {
		return nil, err
	}
	if version == A006 {
		return rsa.SignPSS(rand.Reader, priv, crypto.SHA256, m, pssOpts)
	}
	return rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, m)
}

// VerifyES verifies an A005/A006 signature over an order data digest
// (ESDigest).
func VerifyES(version string, pub *rsa.PublicKey, digest, sig []byte) error {
	m, err := esHashed(version, digest)
	if err == nil {
		if version == A006 {
			err = rsa.VerifyPSS(pub, crypto.SHA256, m, sig, pssOpts)
		} else {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, m, sig)
		}
	}
	if err != nil {
		return &CryptoError{Op: "es_verify", Err: err}
	}
	return nil
}

// KeyHashInput is the text hashed for a public key digest in EBICS 2.5:
// the exponent and the modulus in lowercase hex without leading zeros,
// separated by one space.
func KeyHashInput(pub *rsa.PublicKey) string {
	e := strings.TrimLeft(hex.EncodeToString(big.NewInt(int64(pub.E)).Bytes()), "0")
	m := strings.TrimLeft(hex.EncodeToString(pub.N.Bytes()), "0")
	return e + " " + m
}

// KeyHash returns the public key digest (SHA-256) as EBICS 2.5 computes it
// for BankPubKeyDigests and the initialisation letter.
func KeyHash(pub *rsa.PublicKey) []byte {
	h := sha256.Sum256([]byte(KeyHashInput(pub)))
	return h[:]
}

// CertHash returns the SHA-256 of a DER certificate, the digest EBICS 3.0
// uses for keys carried in certificates.
func CertHash(der []byte) []byte {
	h := sha256.Sum256(der)
	return h[:]
}

// PublicKeyDigest returns the digest for a key in the given version: the
// certificate hash in H005 when a certificate is present, else KeyHash.
func PublicKeyDigest(v Version, pub *rsa.PublicKey, cert *x509.Certificate) []byte {
	if v == H005 && cert != nil {
		return CertHash(cert.Raw)
	}
	return KeyHash(pub)
}

// FormatHash formats a digest the way the initialisation letter shows it:
// uppercase hex byte pairs separated by spaces, 16 per line.
func FormatHash(h []byte) string {
	var b strings.Builder
	for i, c := range h {
		if i > 0 {
			if i%16 == 0 {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// ParseHash reads a digest typed from a letter: hex, with spaces, colons or
// newlines allowed, case-insensitive.
func ParseHash(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', ':', '\n', '\r', '\t', '-':
			return -1
		}
		return r
	}, s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("ebics key hash %q: want 32 bytes of hex", s)
	}
	return b, nil
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// base64Reader decodes standard base64, skipping whitespace; decoding
// errors become *CryptoError.
type base64Reader struct{ r io.Reader }

func newBase64Reader(r io.Reader) io.Reader {
	return &base64Reader{base64.NewDecoder(base64.StdEncoding, &noSpace{r: r})}
}

func (b *base64Reader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &CryptoError{Op: "base64", Err: err}
	}
	return n, err
}

type noSpace struct{ r io.Reader }

func (n *noSpace) Read(p []byte) (int, error) {
	for {
		m, err := n.r.Read(p)
		j := 0
		for _, c := range p[:m] {
			if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

func inflateReader(r io.Reader, max int64) ([]byte, error) {
	zr, err := zlib.NewReader(r)
	if err != nil {
		var ce *CryptoError
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, &CryptoError{Op: "inflate", Err: err}
	}
	defer zr.Close()
	var b bytes.Buffer
	n, err := io.Copy(&b, io.LimitReader(zr, max+1))
	if err != nil {
		var ce *CryptoError
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, &CryptoError{Op: "inflate", Err: err}
	}
	if n > max {
		return nil, &CryptoError{Op: "inflate", Err: ErrInflateLimit}
	}
	return b.Bytes(), nil
}
