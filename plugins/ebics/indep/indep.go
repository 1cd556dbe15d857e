// Package indep checks EBICS cryptography with implementations acquit did
// not write: xmlsec1 (libxmlsec1) for the X002 authentication signature and
// the openssl command line for the A005/A006 order signatures, the E002
// transaction key (RSA PKCS#1 v1.5) and the E002 order data (AES-128-CBC,
// zero IV, ANSI X9.23 padding), and python3's zlib module (the C zlib) for
// the order data's zlib stream. Both directions are offered: the tools
// verify/decrypt what acquit produced, and sign/encrypt what acquit must
// accept.
//
// It is a test-support package (tests and e2e runs only): every function
// runs an external program in a private temporary directory. The EBICS
// conventions it encodes are written here from the specification and the
// published implementations (see plugins/ebics/PROTOCOL.md), without calling
// acquit's protocol package, so that one shared bug cannot make acquit agree
// with itself.
package indep

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrToolMissing is returned (wrapped) when xmlsec1, openssl or python3 is
// not installed; tools/test.sh installs them.
var ErrToolMissing = errors.New("independent tool not installed (apt-get install xmlsec1 openssl python3)")

// Require returns an error wrapping ErrToolMissing unless xmlsec1, openssl
// and python3 are on PATH. Tests call it once and fail (not skip): a
// missing verifier must not turn into a silent pass.
func Require() error {
	for _, tool := range []string{"xmlsec1", "openssl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s: %w", tool, ErrToolMissing)
		}
	}
	return nil
}

// run executes a tool in dir and returns its stdout; a failure carries
// the tool's combined output.
func run(dir string, stdin []byte, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrToolMissing)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s%s", name, strings.Join(args, " "), err,
			strings.TrimSpace(errb.String()), strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// workdir creates a private temporary directory; the caller removes it.
func workdir() (string, error) {
	return os.MkdirTemp("", "acquit-indep-")
}

// PublicPEM encodes a public key as a PKIX "PUBLIC KEY" PEM block.
func PublicPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("indep: marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// PrivatePEM encodes a private key as a PKCS#8 "PRIVATE KEY" PEM block.
func PrivatePEM(priv *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("indep: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// inDir runs f in a fresh private directory holding files; the directory
// is removed afterwards.
func inDir(files map[string][]byte, f func(dir string) error) error {
	dir, err := workdir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writeFiles(dir, files); err != nil {
		return err
	}
	return f(dir)
}

// writeFiles writes name->content pairs into dir.
func writeFiles(dir string, files map[string][]byte) error {
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("indep: write %s: %w", name, err)
		}
	}
	return nil
}

// ---- X002 with xmlsec1 ----

var (
	authOpen  = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?AuthSignature\b`)
	authClose = regexp.MustCompile(`</([A-Za-z_][\w.-]*:)?AuthSignature\s*>`)
	sigOpen   = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?Signature\b`)
	sigClose  = regexp.MustCompile(`</([A-Za-z_][\w.-]*:)?Signature\s*>`)
	siPrefix  = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?SignedInfo\b`)
)

// AuthToDsig returns a copy of an EBICS message whose AuthSignature element
// is renamed to a ds:Signature start node (the prefix SignedInfo uses), so a
// generic XML-DSig verifier finds it. SignedInfo does not cover the
// AuthSignature element itself and no namespace declaration is added, so
// the signature's meaning is unchanged. The rename is textual: the bytes
// under test are never re-serialised by acquit code.
func AuthToDsig(msg []byte) ([]byte, error) {
	loc := authOpen.FindIndex(msg)
	if loc == nil {
		return nil, errors.New("indep: no AuthSignature element")
	}
	m := siPrefix.FindSubmatch(msg[loc[1]:])
	if m == nil {
		return nil, errors.New("indep: AuthSignature has no SignedInfo")
	}
	prefix := string(m[1])
	if prefix == "" {
		return nil, errors.New("indep: unprefixed SignedInfo is not supported")
	}
	out := authOpen.ReplaceAll(msg, []byte("<"+prefix+"Signature"))
	out = authClose.ReplaceAll(out, []byte("</"+prefix+"Signature>"))
	return out, nil
}

// dsigToAuth is the inverse rename, after xmlsec1 signed a template.
func dsigToAuth(msg []byte) []byte {
	out := sigOpen.ReplaceAll(msg, []byte("<AuthSignature"))
	return sigClose.ReplaceAll(out, []byte("</AuthSignature>"))
}

// VerifyX002 verifies the X002 AuthSignature of an EBICS request or response
// (as sent on the wire) with xmlsec1 and the sender's public key. xmlsec1
// resolves the #xpointer(//*[@authenticate='true']) reference itself, so the
// selection, its document order and the canonicalisation are libxml2's,
// not acquit's.
func VerifyX002(msg []byte, pub *rsa.PublicKey) error {
	doc, err := AuthToDsig(msg)
	if err != nil {
		return err
	}
	key, err := PublicPEM(pub)
	if err != nil {
		return err
	}
	return inDir(map[string][]byte{"msg.xml": doc, "key.pem": key}, func(dir string) error {
		if _, err := run(dir, nil, "xmlsec1", "verify", "--pubkey-pem", "key.pem", "msg.xml"); err != nil {
			return fmt.Errorf("indep: xmlsec1 rejects the X002 signature: %w", err)
		}
		return nil
	})
}

// x002Template is the SignedInfo X002 prescribes, with empty values for
// xmlsec1 to fill in.
const x002Template = `<ds:Signature><ds:SignedInfo>` +
	`<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>` +
	`<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
	`<ds:Reference URI="#xpointer(//*[@authenticate='true'])"><ds:Transforms>` +
	`<ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></ds:Transforms>` +
	`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>` +
	`<ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>` +
	`<ds:SignatureValue></ds:SignatureValue></ds:Signature>`

var headerEnd = regexp.MustCompile(`</([A-Za-z_][\w.-]*:)?header\s*>`)

// SignX002 signs an unsigned EBICS message with xmlsec1: it inserts an
// X002 template right after the header (the message's root must declare
// xmlns:ds="http://www.w3.org/2000/09/xmldsig#"), lets xmlsec1 compute the
// digest and the signature, and renames the ds:Signature start node back to
// AuthSignature. The result is what a bank or client built on libxmlsec1
// would send.
func SignX002(unsigned []byte, priv *rsa.PrivateKey) ([]byte, error) {
	if authOpen.Match(unsigned) {
		return nil, errors.New("indep: message already carries an AuthSignature")
	}
	if !bytes.Contains(unsigned, []byte(`xmlns:ds="http://www.w3.org/2000/09/xmldsig#"`)) {
		return nil, errors.New("indep: message does not declare xmlns:ds")
	}
	loc := headerEnd.FindIndex(unsigned)
	if loc == nil {
		return nil, errors.New("indep: message has no header")
	}
	var tpl bytes.Buffer
	tpl.Write(unsigned[:loc[1]])
	tpl.WriteString(x002Template)
	tpl.Write(unsigned[loc[1]:])
	key, err := PrivatePEM(priv)
	if err != nil {
		return nil, err
	}
	var signed []byte
	err = inDir(map[string][]byte{"tpl.xml": tpl.Bytes(), "key.pem": key}, func(dir string) error {
		if _, err := run(dir, nil, "xmlsec1", "sign", "--privkey-pem", "key.pem", "--output", "signed.xml", "tpl.xml"); err != nil {
			return fmt.Errorf("indep: xmlsec1 sign: %w", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "signed.xml"))
		if err != nil {
			return fmt.Errorf("indep: read signed message: %w", err)
		}
		signed = dsigToAuth(b)
		return nil
	})
	return signed, err
}

// ---- A005 / A006 with openssl ----

// Signature versions (the EBICS names).
const (
	A005 = "A005"
	A006 = "A006"
)

// StripCRLFEOF returns data without CR (0x0D), LF (0x0A) and Ctrl-Z (0x1A)
// bytes: the normalisation that the EBICS specification (annex on the
// electronic signature, "data preparation") prescribes before hashing
// order data, and that libeufin and ebics-java apply. Whether a bank
// expects it is a profile choice in acquit (see PROTOCOL.md); callers pass
// StripCRLFEOF(data) or data to the functions below accordingly.
func StripCRLFEOF(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for _, c := range data {
		if c != '\r' && c != '\n' && c != 0x1a {
			out = append(out, c)
		}
	}
	return out
}

// esArgs returns the openssl dgst arguments for the version's padding.
func esArgs(version string) ([]string, error) {
	switch version {
	case A005:
		return []string{"dgst", "-sha256"}, nil
	case A006:
		return []string{"dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256"}, nil
	}
	return nil, fmt.Errorf("indep: unsupported signature version %q", version)
}

// esMessage is what openssl signs for a version: A005 is
// RSASSA-PKCS1-v1_5 with SHA-256 over the order data itself (the DigestInfo
// carries SHA-256(data)); A006 is RSASSA-PSS (SHA-256, MGF1-SHA-256, salt
// 32) whose message is the 32-byte SHA-256 of the order data, so PSS hashes
// that digest again (libeufin-nexus CryptoUtil.signEbicsA006 over
// digestEbicsOrderA006; ebics-client-php and epics do the same).
func esMessage(dir, version string, data []byte) ([]byte, error) {
	if version != A006 {
		return data, nil
	}
	if err := writeFiles(dir, map[string][]byte{"data.bin": data}); err != nil {
		return nil, err
	}
	return run(dir, nil, "openssl", "dgst", "-sha256", "-binary", "data.bin")
}

// SignES signs order data (after whatever normalisation the caller chose)
// with openssl as an A005 or A006 electronic signature.
func SignES(version string, priv *rsa.PrivateKey, data []byte) ([]byte, error) {
	key, err := PrivatePEM(priv)
	if err != nil {
		return nil, err
	}
	var sig []byte
	err = es(version, key, data, nil, func(dir string, args []string) error {
		var err error
		if sig, err = run(dir, nil, "openssl", append(args, "-sign", "key.pem", "msg.bin")...); err != nil {
			return fmt.Errorf("indep: openssl %s sign: %w", version, err)
		}
		return nil
	})
	return sig, err
}

// VerifyES verifies an A005 or A006 electronic signature over order data
// (after whatever normalisation the caller chose) with openssl.
func VerifyES(version string, pub *rsa.PublicKey, data, sig []byte) error {
	key, err := PublicPEM(pub)
	if err != nil {
		return err
	}
	return es(version, key, data, sig, func(dir string, args []string) error {
		if _, err := run(dir, nil, "openssl", append(args, "-verify", "key.pem", "-signature", "sig.bin", "msg.bin")...); err != nil {
			return fmt.Errorf("indep: openssl rejects the %s signature: %w", version, err)
		}
		return nil
	})
}

// es prepares a directory with key.pem, msg.bin (the version's message
// for data) and sig.bin, and runs f with the openssl dgst arguments.
func es(version string, key, data, sig []byte, f func(dir string, args []string) error) error {
	args, err := esArgs(version)
	if err != nil {
		return err
	}
	return inDir(map[string][]byte{"key.pem": key, "sig.bin": sig}, func(dir string) error {
		msg, err := esMessage(dir, version, data)
		if err != nil {
			return err
		}
		if err := writeFiles(dir, map[string][]byte{"msg.bin": msg}); err != nil {
			return err
		}
		return f(dir, args)
	})
}

// ---- E002 with openssl ----

// WrapKey encrypts a transaction key for the recipient with openssl
// (RSAES-PKCS1-v1_5, as E002 prescribes).
func WrapKey(pub *rsa.PublicKey, key []byte) ([]byte, error) {
	return pkeyutl(pub, nil, "-encrypt", key)
}

// UnwrapKey decrypts a wrapped transaction key with openssl.
func UnwrapKey(priv *rsa.PrivateKey, wrapped []byte) ([]byte, error) {
	return pkeyutl(nil, priv, "-decrypt", wrapped)
}

func pkeyutl(pub *rsa.PublicKey, priv *rsa.PrivateKey, op string, in []byte) ([]byte, error) {
	var key []byte
	var err error
	args := []string{"pkeyutl", op, "-pkeyopt", "rsa_padding_mode:pkcs1", "-in", "in.bin", "-inkey", "key.pem"}
	if pub != nil {
		key, err = PublicPEM(pub)
		args = append(args, "-pubin")
	} else {
		key, err = PrivatePEM(priv)
	}
	if err != nil {
		return nil, err
	}
	return runIn(map[string][]byte{"in.bin": in, "key.pem": key}, "openssl pkeyutl "+op, args...)
}

// runIn runs openssl with args in a directory holding files and returns
// its output.
func runIn(files map[string][]byte, what string, args ...string) ([]byte, error) {
	var out []byte
	err := inDir(files, func(dir string) error {
		var err error
		if out, err = run(dir, nil, "openssl", args...); err != nil {
			return fmt.Errorf("indep: %s: %w", what, err)
		}
		return nil
	})
	return out, err
}

// zeroIV is E002's initialisation vector: 16 zero bytes.
var zeroIV = strings.Repeat("00", 16)

// EncryptE002 encrypts data with openssl AES-128-CBC, zero IV, after ANSI
// X9.23 padding (zero bytes then one byte with the padding length; always
// 1..16 bytes), as E002 prescribes.
func EncryptE002(key, data []byte) ([]byte, error) {
	pad := 16 - len(data)%16
	padded := append(append([]byte{}, data...), make([]byte, pad)...)
	padded[len(padded)-1] = byte(pad)
	return aes(key, padded, "-e")
}

// DecryptE002 decrypts E002 ciphertext with openssl and removes the
// padding (the last byte gives its length, 1..16).
func DecryptE002(key, data []byte) ([]byte, error) {
	out, err := aes(key, data, "-d")
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("indep: empty E002 plaintext")
	}
	pad := int(out[len(out)-1])
	if pad < 1 || pad > 16 || pad > len(out) {
		return nil, fmt.Errorf("indep: bad E002 padding length %d", pad)
	}
	return out[:len(out)-pad], nil
}

func aes(key, in []byte, op string) ([]byte, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("indep: E002 key is %d bytes, want 16", len(key))
	}
	return runIn(map[string][]byte{"in.bin": in}, "openssl enc "+op,
		"enc", "-aes-128-cbc", op, "-nopad", "-K", hex.EncodeToString(key), "-iv", zeroIV, "-in", "in.bin")
}

// pyInflate is python3's zlib (the C zlib) reading one whole zlib stream:
// header, every deflate block, the Adler-32 trailer, and nothing after it.
const pyInflate = `import sys,zlib
d=zlib.decompressobj()
out=d.decompress(sys.stdin.buffer.read())
if not d.eof or d.unused_data: sys.exit("zlib stream not ended, or bytes after its end")
sys.stdout.buffer.write(out)`

// Inflate decompresses a zlib stream (RFC 1950) with python3's zlib module,
// which checks the Adler-32 and refuses a stream that does not end or has
// bytes after its end.
func Inflate(z []byte) ([]byte, error) {
	out, err := run("", z, "python3", "-c", pyInflate)
	if err != nil {
		return nil, fmt.Errorf("python3 zlib: %w", err)
	}
	return out, nil
}
