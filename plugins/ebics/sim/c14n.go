package sim

// The bank's own XML canonicalisation (Canonical XML 1.0, inclusive,
// without comments: http://www.w3.org/TR/2001/REC-xml-c14n-20010315, the
// method EBICS X002 names), written for the simulator from the W3C
// recommendation. It deliberately shares no code with the client's
// protocol package (which canonicalises with goxmldsig over etree): the
// simulator parses the raw request with encoding/xml, keeps prefixes and
// namespace declarations as written, and canonicalises document subsets
// the way an XPointer reference selects them, so that one shared bug cannot
// make both sides agree.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

// xnode is a node of the simulator's own XML tree: an element (local !=
// ""), a text node or a processing instruction (pi).
type xnode struct {
	prefix, local string
	attrs         []xml.Attr        // Name.Space holds the prefix as written
	decls         map[string]string // namespace declarations on this element (prefix "" = default)
	parent        *xnode
	kids          []*xnode
	text          string
	pi            *xml.ProcInst
}

func (n *xnode) isElem() bool { return n.local != "" }

// qname is the element's name as written.
func (n *xnode) qname() string {
	if n.prefix == "" {
		return n.local
	}
	return n.prefix + ":" + n.local
}

// lookup resolves a prefix in the element's scope ("" for the default
// namespace); ok is false for an undeclared prefix.
func (n *xnode) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for e := n; e != nil; e = e.parent {
		if uri, ok := e.decls[prefix]; ok {
			return uri, true
		}
	}
	return "", prefix == ""
}

// space is the element's namespace URI.
func (n *xnode) space() string { uri, _ := n.lookup(n.prefix); return uri }

// attr returns the value of an unprefixed attribute.
func (n *xnode) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// child returns the first child element with this namespace and local
// name.
func (n *xnode) child(space, local string) *xnode {
	for _, k := range n.kids {
		if k.local == local && k.space() == space {
			return k
		}
	}
	return nil
}

// elems returns the child elements.
func (n *xnode) elems() []*xnode {
	var out []*xnode
	for _, k := range n.kids {
		if k.isElem() {
			out = append(out, k)
		}
	}
	return out
}

// textContent is the concatenated text of the element's children.
func (n *xnode) textContent() string {
	var b strings.Builder
	for _, k := range n.kids {
		if !k.isElem() && k.pi == nil {
			b.WriteString(k.text)
		}
	}
	return b.String()
}

// walk visits the element and its descendant elements in document order.
func (n *xnode) walk(f func(*xnode)) {
	f(n)
	for _, k := range n.kids {
		if k.isElem() {
			k.walk(f)
		}
	}
}

// parseTree parses a whole document into the simulator's tree. A DOCTYPE
// (entity declarations) is refused, as an EBICS bank does.
func parseTree(b []byte) (*xnode, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var root, cur *xnode
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if cur == nil && root != nil {
				return nil, errors.New("xml: more than one root element")
			}
			e := &xnode{prefix: t.Name.Space, local: t.Name.Local, parent: cur, decls: map[string]string{}}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					e.decls[""] = a.Value
				case a.Name.Space == "xmlns":
					if a.Value == "" {
						return nil, fmt.Errorf("xml: empty namespace for prefix %s", a.Name.Local)
					}
					e.decls[a.Name.Local] = a.Value
				default:
					e.attrs = append(e.attrs, a)
				}
			}
			if cur == nil {
				root = e
			} else {
				cur.kids = append(cur.kids, e)
			}
			cur = e
			if _, ok := e.lookup(e.prefix); !ok {
				return nil, fmt.Errorf("xml: undeclared prefix %q", e.prefix)
			}
			for _, a := range e.attrs {
				if _, ok := e.lookup(a.Name.Space); a.Name.Space != "" && !ok {
					return nil, fmt.Errorf("xml: undeclared prefix %q", a.Name.Space)
				}
			}
		case xml.EndElement:
			if cur == nil || t.Name.Space != cur.prefix || t.Name.Local != cur.local {
				return nil, fmt.Errorf("xml: unexpected end tag %s", t.Name.Local)
			}
			cur = cur.parent
		case xml.CharData:
			if cur != nil {
				cur.kids = append(cur.kids, &xnode{text: string(t), parent: cur})
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("xml: text outside the root element")
			}
		case xml.ProcInst:
			if cur != nil {
				pi := t.Copy()
				cur.kids = append(cur.kids, &xnode{pi: &pi, parent: cur})
			}
		case xml.Directive:
			return nil, errors.New("xml: DOCTYPE/directives are not accepted")
		case xml.Comment:
			// not part of the canonical form
		}
	}
	if root == nil || cur != nil {
		return nil, errors.New("xml: truncated document")
	}
	return root, nil
}

// c14nSubtrees canonicalises the node-set made of the given elements'
// subtrees (as #xpointer(//*[...]) selects them) and writes the octets in
// document order: an element inside another selected subtree is covered by
// it and not written twice. Each apex element carries every namespace in
// scope and the xml:* attributes of its ancestors, per section 2.4 of the
// recommendation (document subsets).
func c14nSubtrees(w *bytes.Buffer, sel []*xnode) {
	in := map[*xnode]bool{}
	for _, e := range sel {
		in[e] = true
	}
	for _, e := range sel {
		covered := false
		for p := e.parent; p != nil; p = p.parent {
			covered = covered || in[p]
		}
		if !covered {
			c14nElem(w, e, map[string]string{}, true)
		}
	}
}

// c14nElem writes one element of the node-set; outer holds the namespace
// declarations in effect in the output around it (the nearest output
// ancestor's rendered namespaces).
func c14nElem(w *bytes.Buffer, e *xnode, outer map[string]string, apex bool) {
	scope := map[string]string{}
	var chain []*xnode
	for p := e; p != nil; p = p.parent {
		chain = append(chain, p)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		for p, uri := range chain[i].decls {
			scope[p] = uri
		}
	}
	var prefixes []string
	for p, uri := range scope {
		if p == "" && uri == "" {
			if outer[""] != "" { // undeclare a default the output still has
				prefixes = append(prefixes, p)
			}
			continue
		}
		if have, ok := outer[p]; !ok || have != uri {
			prefixes = append(prefixes, p)
		}
	}
	sort.Strings(prefixes) // the default namespace ("") first
	rendered := make(map[string]string, len(outer)+len(prefixes))
	for p, uri := range outer {
		rendered[p] = uri
	}
	w.WriteByte('<')
	w.WriteString(e.qname())
	for _, p := range prefixes {
		rendered[p] = scope[p]
		if p == "" {
			w.WriteString(` xmlns="`)
		} else {
			w.WriteString(` xmlns:` + p + `="`)
		}
		escapeAttr(w, scope[p])
		w.WriteByte('"')
	}
	attrs := append([]xml.Attr(nil), e.attrs...)
	if apex { // xml:* attributes inherited from ancestors outside the set
		have := map[string]bool{}
		for _, a := range attrs {
			if a.Name.Space == "xml" {
				have[a.Name.Local] = true
			}
		}
		for p := e.parent; p != nil; p = p.parent {
			for _, a := range p.attrs {
				if a.Name.Space == "xml" && !have[a.Name.Local] {
					have[a.Name.Local] = true
					attrs = append(attrs, a)
				}
			}
		}
	}
	type keyed struct {
		uri string
		a   xml.Attr
	}
	ks := make([]keyed, len(attrs))
	for i, a := range attrs {
		uri := ""
		if a.Name.Space != "" {
			uri, _ = e.lookup(a.Name.Space)
		}
		ks[i] = keyed{uri, a}
	}
	sort.SliceStable(ks, func(i, j int) bool {
		if ks[i].uri != ks[j].uri {
			return ks[i].uri < ks[j].uri
		}
		return ks[i].a.Name.Local < ks[j].a.Name.Local
	})
	for _, k := range ks {
		w.WriteByte(' ')
		if k.a.Name.Space != "" {
			w.WriteString(k.a.Name.Space + ":")
		}
		w.WriteString(k.a.Name.Local + `="`)
		escapeAttr(w, k.a.Value)
		w.WriteByte('"')
	}
	w.WriteByte('>')
	for _, k := range e.kids {
		switch {
		case k.isElem():
			c14nElem(w, k, rendered, false)
		case k.pi != nil:
			w.WriteString("<?" + k.pi.Target)
			if len(k.pi.Inst) > 0 {
				w.WriteByte(' ')
				w.Write(bytes.TrimLeft(k.pi.Inst, " \t\r\n"))
			}
			w.WriteString("?>")
		default:
			escapeText(w, k.text)
		}
	}
	w.WriteString("</" + e.qname() + ">")
}

func escapeText(w *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '>':
			w.WriteString("&gt;")
		case '\r':
			w.WriteString("&#xD;")
		default:
			w.WriteRune(r)
		}
	}
}

func escapeAttr(w *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '"':
			w.WriteString("&quot;")
		case '\t':
			w.WriteString("&#x9;")
		case '\n':
			w.WriteString("&#xA;")
		case '\r':
			w.WriteString("&#xD;")
		default:
			w.WriteRune(r)
		}
	}
}

// childOrNil is child on a possibly missing element.
func (n *xnode) childOrNil(space, local string) *xnode {
	if n == nil {
		return nil
	}
	return n.child(space, local)
}
