package protocol

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// XML-DSig identifiers used by X002.
const (
	NSDsig        = "http://www.w3.org/2000/09/xmldsig#"
	AlgC14N       = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	AlgRSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgSHA256     = "http://www.w3.org/2001/04/xmlenc#sha256"
	AuthReference = "#xpointer(//*[@authenticate='true'])"
)

// AuthError is returned when an X002 authentication signature is missing,
// malformed or wrong.
type AuthError struct{ Reason string }

// Error implements error.
func (e *AuthError) Error() string { return "ebics x002 authentication: " + e.Reason }

// ErrAuth matches any *AuthError with errors.Is.
var ErrAuth = &AuthError{}

// Is matches any *AuthError.
func (e *AuthError) Is(target error) bool { _, ok := target.(*AuthError); return ok }

// authDigest computes the X002 reference digest: SHA-256 over the inclusive
// C14N (1.0, without comments) of every element carrying
// authenticate="true", in document order, concatenated. goxmldsig cannot
// express the #xpointer reference, so the digest is computed here with its
// inclusive canonicalizer (which carries the in-scope namespace declarations
// of the ancestors onto each element, as canonicalising the XPath node-set
// does) and SignedInfo is signed directly.
func authDigest(doc *etree.Document) ([]byte, int, error) {
	c := dsig.MakeC14N10RecCanonicalizer()
	h := sha256.New()
	els := authElements(doc.Root())
	for _, el := range els {
		b, err := c.Canonicalize(el)
		if err != nil {
			return nil, 0, fmt.Errorf("c14n %s: %w", el.Tag, err)
		}
		h.Write(b)
	}
	return h.Sum(nil), len(els), nil
}

// authElements returns the elements the X002 reference
// #xpointer(//*[@authenticate='true']) selects, in DOCUMENT ORDER (a
// pre-order walk), which is the order XPath node-sets are canonicalised in.
// etree's FindElements("//*[...]") is not used: it returns matches depth by
// depth, so an authenticated element nested deeper (DataEncryptionInfo in a
// download response) came after shallower ones that follow it in the
// document (body/ReturnCode), and the digest differed from every other
// implementation's. The attribute must be the unqualified "authenticate"
// with the exact value "true", as the XPath compares. An authenticated
// element inside another one is already covered by its ancestor's subtree
// (the node-set is a union), so it is not canonicalised twice.
func authElements(root *etree.Element) []*etree.Element {
	var out []*etree.Element
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		if isAuthenticated(e) {
			out = append(out, e)
			return
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	if root != nil {
		walk(root)
	}
	return out
}

func isAuthenticated(e *etree.Element) bool {
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == "authenticate" && a.Value == "true" {
			return true
		}
	}
	return false
}

// SignAuth adds the AuthSignature element (X002: RSA-SHA256 over the
// canonical SignedInfo) right after the header of an EBICS request or
// response document.
func SignAuth(doc *etree.Document, priv *rsa.PrivateKey) error {
	root := doc.Root()
	if root.SelectAttr("xmlns:ds") == nil {
		root.CreateAttr("xmlns:ds", NSDsig)
	}
	header := root.SelectElement("header")
	if header == nil {
		return fmt.Errorf("ebics x002 sign: no header")
	}
	if old := root.SelectElement("AuthSignature"); old != nil {
		root.RemoveChild(old)
	}
	digest, _, err := authDigest(doc)
	if err != nil {
		return fmt.Errorf("ebics x002 sign: %w", err)
	}
	as := etree.NewElement("AuthSignature")
	root.InsertChildAt(header.Index()+1, as)
	si := as.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", AlgC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", AlgRSASHA256)
	ref := si.CreateElement("ds:Reference")
	ref.CreateAttr("URI", AuthReference)
	ref.CreateElement("ds:Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", AlgC14N)
	ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", AlgSHA256)
	ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(digest))
	csi, err := dsig.MakeC14N10RecCanonicalizer().Canonicalize(si)
	if err != nil {
		return fmt.Errorf("ebics x002 sign: c14n SignedInfo: %w", err)
	}
	sum := sha256.Sum256(csi)
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("ebics x002 sign: %w", err)
	}
	as.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(sig))
	return nil
}

// VerifyAuth checks the AuthSignature of a parsed document with the
// sender's X002 public key. mustAuth lists element tags (local names) that
// must carry authenticate="true" where present outside the header, so a
// forger cannot exclude them from the digest by dropping the attribute; the
// header always must.
func VerifyAuth(doc *etree.Document, pub *rsa.PublicKey, mustAuth ...string) error {
	root := doc.Root()
	header := root.SelectElement("header")
	if header == nil || header.SelectAttrValue("authenticate", "") != "true" {
		return &AuthError{"header not marked authenticate=\"true\""}
	}
	for _, tag := range mustAuth {
		for _, el := range root.FindElements("//" + tag) {
			if inside(el, header) {
				continue // covered by the header
			}
			if el.SelectAttrValue("authenticate", "") != "true" {
				return &AuthError{tag + " not marked authenticate=\"true\""}
			}
		}
	}
	as := root.SelectElement("AuthSignature")
	if as == nil {
		return &AuthError{"no AuthSignature"}
	}
	si := child(as, "SignedInfo")
	sv := child(as, "SignatureValue")
	if si == nil || sv == nil {
		return &AuthError{"AuthSignature lacks SignedInfo or SignatureValue"}
	}
	if a := attrOf(child(si, "CanonicalizationMethod"), "Algorithm"); a != AlgC14N {
		return &AuthError{"unexpected canonicalization " + a}
	}
	if a := attrOf(child(si, "SignatureMethod"), "Algorithm"); a != AlgRSASHA256 {
		return &AuthError{"unexpected signature method " + a}
	}
	refs := 0
	var ref *etree.Element
	for _, c := range si.ChildElements() {
		if c.Tag == "Reference" {
			refs++
			ref = c
		}
	}
	if refs != 1 || ref.SelectAttrValue("URI", "") != AuthReference {
		return &AuthError{"want exactly one Reference with URI " + AuthReference}
	}
	if a := attrOf(child(ref, "DigestMethod"), "Algorithm"); a != AlgSHA256 {
		return &AuthError{"unexpected digest method " + a}
	}
	if tr := child(ref, "Transforms"); tr != nil {
		for _, t := range tr.ChildElements() {
			if t.SelectAttrValue("Algorithm", "") != AlgC14N {
				return &AuthError{"unexpected transform " + t.SelectAttrValue("Algorithm", "")}
			}
		}
	}
	dv := child(ref, "DigestValue")
	if dv == nil {
		return &AuthError{"no DigestValue"}
	}
	want, err := DecodeBase64(dv.Text())
	if err != nil {
		return &AuthError{"DigestValue: " + err.Error()}
	}
	got, _, err := authDigest(doc)
	if err != nil {
		return &AuthError{err.Error()}
	}
	if !bytes.Equal(got, want) {
		return &AuthError{"digest mismatch: authenticated content was altered"}
	}
	sig, err := DecodeBase64(sv.Text())
	if err != nil {
		return &AuthError{"SignatureValue: " + err.Error()}
	}
	csi, err := dsig.MakeC14N10RecCanonicalizer().Canonicalize(si)
	if err != nil {
		return &AuthError{"c14n SignedInfo: " + err.Error()}
	}
	sum := sha256.Sum256(csi)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return &AuthError{"signature value does not verify"}
	}
	return nil
}

func inside(e, ancestor *etree.Element) bool {
	for p := e.Parent(); p != nil; p = p.Parent() {
		if p == ancestor {
			return true
		}
	}
	return false
}

func child(e *etree.Element, tag string) *etree.Element {
	if e == nil {
		return nil
	}
	for _, c := range e.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

func attrOf(e *etree.Element, key string) string {
	if e == nil {
		return ""
	}
	return e.SelectAttrValue(key, "")
}

// IsAuthError reports whether err is an *AuthError.
func IsAuthError(err error) bool {
	var a *AuthError
	return errors.As(err, &a)
}
