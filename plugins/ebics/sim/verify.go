package sim

// The bank's own verification of what a client signs, written from the
// EBICS specification and not calling the client's protocol helpers
// (protocol.VerifyAuth, protocol.VerifyES, protocol.DocumentDigest):
//
//   - X002: XML-DSig over the reference #xpointer(//*[@authenticate='true']),
//     i.e. every element carrying authenticate="true", in document order,
//     canonicalised with inclusive C14N 1.0 (c14n.go), digested with
//     SHA-256; SignedInfo canonicalised the same way and signed with RSA
//     PKCS#1 v1.5 over SHA-256.
//   - A005: RSA PKCS#1 v1.5 with SHA-256 over the order data.
//   - A006: RSASSA-PSS (MGF1-SHA-256, 32-byte salt) whose message is the
//     32-byte SHA-256 of the order data, so PSS hashes that digest again.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// The XML-DSig identifiers X002 allows.
const (
	nsDsig        = "http://www.w3.org/2000/09/xmldsig#"
	algC14N       = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	algRSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algSHA256     = "http://www.w3.org/2001/04/xmlenc#sha256"
	x002Reference = "#xpointer(//*[@authenticate='true'])"
)

// mustAuthenticate are the request elements the schema marks
// authenticate="true" (fixed): a request where one of them lacks the mark
// would leave it out of the digest.
var mustAuthenticate = []string{"header", "DataEncryptionInfo", "SignatureData", "TransferReceipt"}

// x002Digest is the reference digest: SHA-256 over the canonical form of
// the authenticated elements in document order.
func x002Digest(root *xnode) ([]byte, []*xnode) {
	var sel []*xnode
	root.walk(func(e *xnode) {
		if v, ok := e.attr("authenticate"); ok && v == "true" {
			sel = append(sel, e)
		}
	})
	var buf bytes.Buffer
	c14nSubtrees(&buf, sel)
	sum := sha256.Sum256(buf.Bytes())
	return sum[:], sel
}

// verifyX002 checks the AuthSignature of a raw EBICS message with the
// sender's authentication key.
func verifyX002(raw []byte, pub *rsa.PublicKey) error {
	root, err := parseTree(raw)
	if err != nil {
		return err
	}
	return verifyX002Tree(root, pub)
}

func verifyX002Tree(root *xnode, pub *rsa.PublicKey) error {
	ns := root.space()
	as := root.child(ns, "AuthSignature")
	if as == nil {
		return fmt.Errorf("no AuthSignature")
	}
	si := as.child(nsDsig, "SignedInfo")
	sv := as.child(nsDsig, "SignatureValue")
	if si == nil || sv == nil {
		return fmt.Errorf("AuthSignature lacks ds:SignedInfo or ds:SignatureValue")
	}
	algOf := func(parent *xnode, local string) string {
		if parent == nil {
			return ""
		}
		if e := parent.child(nsDsig, local); e != nil {
			v, _ := e.attr("Algorithm")
			return v
		}
		return ""
	}
	if a := algOf(si, "CanonicalizationMethod"); a != algC14N {
		return fmt.Errorf("CanonicalizationMethod %q, X002 requires %s", a, algC14N)
	}
	if a := algOf(si, "SignatureMethod"); a != algRSASHA256 {
		return fmt.Errorf("SignatureMethod %q, X002 requires %s", a, algRSASHA256)
	}
	var refs []*xnode
	for _, k := range si.elems() {
		if k.local == "Reference" && k.space() == nsDsig {
			refs = append(refs, k)
		}
	}
	if len(refs) != 1 {
		return fmt.Errorf("%d ds:Reference elements, X002 has exactly one", len(refs))
	}
	ref := refs[0]
	if uri, _ := ref.attr("URI"); uri != x002Reference {
		return fmt.Errorf("reference URI %q, X002 requires %s", uri, x002Reference)
	}
	if tr := ref.child(nsDsig, "Transforms"); tr != nil {
		for _, t := range tr.elems() {
			if a, _ := t.attr("Algorithm"); a != algC14N {
				return fmt.Errorf("transform %q not allowed", a)
			}
		}
	}
	if a := algOf(ref, "DigestMethod"); a != algSHA256 {
		return fmt.Errorf("DigestMethod %q, X002 requires %s", a, algSHA256)
	}
	dv := ref.child(nsDsig, "DigestValue")
	if dv == nil {
		return fmt.Errorf("no ds:DigestValue")
	}
	want, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(dv.textContent()), ""))
	if err != nil {
		return fmt.Errorf("DigestValue: %w", err)
	}
	got, sel := x002Digest(root)
	marked := map[*xnode]bool{}
	for _, e := range sel {
		marked[e] = true
	}
	var unmarked string
	root.walk(func(e *xnode) {
		for _, m := range mustAuthenticate {
			if e.local == m && e.space() == ns && !marked[e] && unmarked == "" && !inMarked(e, marked) {
				unmarked = m
			}
		}
	})
	if unmarked != "" {
		return fmt.Errorf("%s not marked authenticate=\"true\"", unmarked)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("reference digest mismatch: the authenticated elements were altered")
	}
	sig, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.textContent()), ""))
	if err != nil {
		return fmt.Errorf("SignatureValue: %w", err)
	}
	var buf bytes.Buffer
	c14nSubtrees(&buf, []*xnode{si})
	sum := sha256.Sum256(buf.Bytes())
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature value does not verify with the subscriber's X002 key")
	}
	return nil
}

// inMarked reports whether an ancestor of e is authenticated (e is then
// covered by its digest).
func inMarked(e *xnode, marked map[*xnode]bool) bool {
	for p := e.parent; p != nil; p = p.parent {
		if marked[p] {
			return true
		}
	}
	return false
}

// orderHash is the SHA-256 the bank computes over received order data
// (the ES input, and the H005 DataDigest), as a stream: fed the order data
// without CR, LF and Ctrl-Z (unless ESRawDigest).
func (s *Sim) orderHash() hash.Hash {
	if s.cfg.ESRawDigest {
		return sha256.New()
	}
	return &strippedHash{Hash: sha256.New()}
}

// strippedHash leaves CR, LF and Ctrl-Z out of what it hashes (the
// simulator's own code, independent of the client's protocol.NewESHash).
type strippedHash struct {
	hash.Hash
	buf []byte
}

func (h *strippedHash) Write(p []byte) (int, error) {
	n := len(p)
	// The runs between the bytes left out are hashed as they are, with no
	// per-byte loop: the next CR, LF and Ctrl-Z are each found with the
	// vectorised IndexByte, and each position is searched again only once
	// passed; short runs are gathered so the hash is not called per line.
	next := [3]int{-2, -2, -2} // per byte left out: its next index in p (-1: none; -2: to search)
	off := 0
	for off < len(p) {
		cut := len(p)
		for k, c := range [3]byte{'\r', '\n', 0x1a} {
			if next[k] == -2 || (next[k] >= 0 && next[k] < off) {
				next[k] = -1
				if i := bytes.IndexByte(p[off:], c); i >= 0 {
					next[k] = off + i
				}
			}
			if next[k] >= 0 && next[k] < cut {
				cut = next[k]
			}
		}
		h.add(p[off:cut])
		off = cut + 1
	}
	h.flush()
	return n, nil
}

// add queues a run of kept bytes; long runs go to the hash directly.
func (h *strippedHash) add(run []byte) {
	if len(h.buf)+len(run) > cap(h.buf) {
		h.flush()
		if h.buf == nil {
			h.buf = make([]byte, 0, 32<<10)
		}
		if len(run) >= cap(h.buf) {
			h.Hash.Write(run)
			return
		}
	}
	h.buf = append(h.buf, run...)
}

func (h *strippedHash) flush() {
	if len(h.buf) > 0 {
		h.Hash.Write(h.buf)
		h.buf = h.buf[:0]
	}
}

// pssSalt is the A006 salt length (the length of the SHA-256 digest).
const pssSalt = 32

// verifyOrderSignature checks an A005 or A006 electronic signature over
// the order data digest (from orderDigest).
func verifyOrderSignature(version string, pub *rsa.PublicKey, digest, sig []byte) error {
	switch version {
	case "A005":
		// EMSA-PKCS1-v1_5: DigestInfo(SHA-256, digest of the order data).
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	case "A006":
		// The PSS message is the 32-byte digest itself: PSS hashes it again.
		m := sha256.Sum256(digest)
		return rsa.VerifyPSS(pub, crypto.SHA256, m[:], sig, &rsa.PSSOptions{SaltLength: pssSalt, Hash: crypto.SHA256})
	}
	return fmt.Errorf("signature version %q not supported", version)
}
