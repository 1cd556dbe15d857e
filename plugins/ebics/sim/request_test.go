package sim

import (
	"reflect"
	"strings"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// transferDoc is a transfer (or receipt) request as a client sends it,
// without its AuthSignature (transferRequest does not read it).
func transferDoc(ver, mutable, body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><ebicsRequest xmlns="urn:org:ebics:` + ver + `" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Version="` + ver + `" Revision="1">` +
		`<header authenticate="true"><static><HostID> SIMBANK </HostID><TransactionID>0123456789ABCDEF0123456789ABCDEF</TransactionID></static>` +
		`<mutable>` + mutable + `</mutable></header><body>` + body + `</body></ebicsRequest>`
}

// A transfer or receipt request read from the simulator's own tree gives
// the fields protocol.ParseRequest gives, malformed ones are refused, and
// anything else (an initialisation, another root, another namespace) is
// left to ParseRequest.
func TestTransferRequestFromTree(t *testing.T) {
	seg := `<TransactionPhase>Transfer</TransactionPhase><SegmentNumber lastSegment="true">3</SegmentNumber>`
	for _, doc := range []string{
		transferDoc("H004", seg, "<DataTransfer><OrderData>\n QUJD\nREVG </OrderData></DataTransfer>"),
		transferDoc("H005", `<TransactionPhase>Transfer</TransactionPhase><SegmentNumber lastSegment="false">1</SegmentNumber>`, "<DataTransfer><OrderData>QUJD</OrderData></DataTransfer>"),
		transferDoc("H004", `<TransactionPhase>Receipt</TransactionPhase>`, "<TransferReceipt authenticate=\"true\"><ReceiptCode>1</ReceiptCode></TransferReceipt>"),
		transferDoc("H004", `<TransactionPhase>Transfer</TransactionPhase><SegmentNumber lastSegment="false">2</SegmentNumber>`, ""), // a download segment
	} {
		tree, err := parseTree([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		got, own, err := transferRequest(tree)
		if err != nil || !own {
			t.Fatalf("%v %v\n%s", own, err, doc)
		}
		want, _, err := protocol.ParseRequest([]byte(doc), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from the tree:\n%+v\nParseRequest:\n%+v", got, want)
		}
	}
	for name, doc := range map[string]string{
		"segment number 0":       transferDoc("H004", `<TransactionPhase>Transfer</TransactionPhase><SegmentNumber lastSegment="true">0</SegmentNumber>`, "<DataTransfer><OrderData>QUJD</OrderData></DataTransfer>"),
		"segment number not int": transferDoc("H004", `<TransactionPhase>Transfer</TransactionPhase><SegmentNumber lastSegment="true">x</SegmentNumber>`, "<DataTransfer><OrderData>QUJD</OrderData></DataTransfer>"),
		"receipt code not int":   transferDoc("H004", `<TransactionPhase>Receipt</TransactionPhase>`, "<TransferReceipt><ReceiptCode>ok</ReceiptCode></TransferReceipt>"),
		"no body":                strings.Replace(transferDoc("H004", seg, ""), "<body></body>", "", 1),
	} {
		tree, err := parseTree([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, own, err := transferRequest(tree); !own || err == nil {
			t.Errorf("%s: own %v, err %v: want refused", name, own, err)
		}
		if _, _, err := protocol.ParseRequest([]byte(doc), 0); err == nil {
			t.Errorf("%s: ParseRequest accepts it", name)
		}
	}
	for name, doc := range map[string]string{
		"initialisation":  strings.Replace(transferDoc("H004", seg, ""), "<TransactionID>0123456789ABCDEF0123456789ABCDEF</TransactionID>", "<Nonce>00</Nonce>", 1),
		"other namespace": strings.Replace(transferDoc("H004", seg, ""), `xmlns="urn:org:ebics:H004"`, `xmlns="urn:org:ebics:H005"`, 1),
		"no version":      strings.Replace(transferDoc("H004", seg, ""), `Version="H004"`, "", 1),
		"unsecured":       strings.ReplaceAll(transferDoc("H004", seg, ""), "ebicsRequest", "ebicsUnsecuredRequest"),
		"no static":       strings.Replace(transferDoc("H004", seg, ""), "static>", "statik>", 2),
	} {
		tree, err := parseTree([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, own, err := transferRequest(tree); own || err != nil {
			t.Errorf("%s: own %v, err %v: want it left to ParseRequest", name, own, err)
		}
	}
}
