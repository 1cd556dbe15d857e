package acks

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseHACGolden(t *testing.T) {
	type gold struct {
		Action, OrderID, OrderType, Partner, User, Time, Code string
		Final, Positive                                       bool
	}
	cases := []struct {
		file string
		want []gold
	}{
		{"acquit_hac_de_ebics25.xml", []gold{
			{"FILE_UPLOAD", "A107", "CCT", "ACQPART1", "ACQUSER1", "2026-11-10T08:41:05.31Z", "TS01", false, true},
			{"ES_VERIFICATION", "A107", "CCT", "ACQPART1", "ACQUSER1", "2026-11-10T08:41:07.02Z", "DS01", false, true},
			{"ORDER_HAC_FINAL_POS", "A107", "CCT", "ACQPART1", "", "2026-11-10T08:41:07.02Z", "", true, true},
			{"FILE_UPLOAD", "A108", "CDD", "ACQPART1", "ACQUSER1", "2026-11-10T09:02:11Z", "TS01", false, true},
			{"ES_VERIFICATION", "A108", "CDD", "ACQPART1", "ACQUSER1", "2026-11-10T09:02:12.5Z", "TD03", false, false},
			{"ORDER_HAC_FINAL_NEG", "A108", "CDD", "ACQPART1", "", "2026-11-10T09:02:12.5Z", "", true, false},
			{"FILE_DOWNLOAD", "A109", "HAC", "ACQPART1", "ACQUSER1", "2026-11-10T10:04:59.8Z", "", false, true},
		}},
		{"acquit_hac_ebics30_btf.xml", []gold{
			{"FILE_UPLOAD", "B001", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T14:00:01Z", "TS01", false, true},
			{"ES_VERIFICATION", "B001", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T14:00:02Z", "DS01", false, true},
			{"VEU_FORWARDING", "B001", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T14:00:02.1Z", "DS06", false, true},
			{"VEU_VERIFICATION", "B001", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T15:12:40Z", "DS01", false, true},
			{"VEU_VERIFICATION_END", "B001", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T15:12:40.3Z", "DS07", false, true},
			{"ORDER_HAC_FINAL_POS", "B001", "BTU", "ACQPART1", "", "2026-11-12T15:12:41Z", "", true, true},
			{"FILE_UPLOAD", "B002", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T14:30:00Z", "TS01", false, true},
			{"VEU_CANCEL_ORDER", "B002", "BTU", "ACQPART1", "ACQUSER2", "2026-11-12T15:40:00Z", "DS02", false, false},
			{"ORDER_HAC_FINAL_NEG", "B002", "BTU", "ACQPART1", "", "2026-11-12T15:40:00Z", "", true, false},
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			es, err := ParseHAC(bytes.NewReader(readTestdata(t, "hac/"+c.file)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != len(c.want) {
				t.Fatalf("%d entries, want %d", len(es), len(c.want))
			}
			for i, w := range c.want {
				e := es[i]
				got := gold{e.Action, e.OrderID, e.OrderType, e.PartnerID, e.UserID, e.Time.Format(time.RFC3339Nano), e.ReasonCode, e.Final, e.Positive}
				if got != w {
					t.Errorf("entry %d = %+v\nwant       %+v", i, got, w)
				}
				if e.Index != i || e.Originator != "Acquit Demo GmbH" {
					t.Errorf("entry %d index %d originator %q", i, e.Index, e.Originator)
				}
			}
		})
	}
}

func TestParseHACDetails(t *testing.T) {
	es, err := ParseHAC(bytes.NewReader(readTestdata(t, "hac/acquit_hac_ebics30_btf.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := HACService{ServiceName: "SCT", ServiceOption: "URG", Scope: "DE", ContainerType: "XML", MsgName: "pain.001"}
	if es[0].Service != want {
		t.Errorf("service = %+v", es[0].Service)
	}
	if es[3].Extra["SignerRole"] != "B" || es[0].Extra != nil {
		t.Errorf("extra = %v / %v", es[3].Extra, es[0].Extra)
	}
	if es[5].Text != "Order B001 processed" {
		t.Errorf("text = %q", es[5].Text)
	}
	de, err := ParseHAC(bytes.NewReader(readTestdata(t, "hac/acquit_hac_de_ebics25.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(de[2].Text, "\n"); len(lines) != 10 || lines[6] != "Kontonummer              : DE89370400440532013000" {
		t.Errorf("protocol text lines = %q", lines)
	}
}

func TestParseHACRefusesPSRAndHostile(t *testing.T) {
	_, err := ParseHAC(bytes.NewReader(readTestdata(t, "psr/nordea_pain_002_v3_txn_reject.xml")), Limits{})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("PSR with transactions taken as HAC: %v", err)
	}
	_, err = ParseHAC(strings.NewReader(`<!DOCTYPE x [<!ENTITY a "b">]><Document/>`), Limits{})
	var pe *ParseError
	if !errors.Is(err, ErrDTD) || !errors.As(err, &pe) || pe.Format != "hac" {
		t.Errorf("DTD: %v", err)
	}
	_, err = ParseHAC(bytes.NewReader(readTestdata(t, "hac/acquit_hac_ebics30_btf.xml")), Limits{MaxCollect: 3})
	if !errors.Is(err, ErrTooMany) {
		t.Errorf("MaxCollect: %v", err)
	}
	rep, err := ReadPSR(bytes.NewReader(readTestdata(t, "hac/acquit_hac_de_ebics25.xml")), Limits{})
	if err != nil || !IsHACGroup(&rep.Group) {
		t.Errorf("IsHACGroup: %v", err)
	}
	rep, err = ReadPSR(bytes.NewReader(readTestdata(t, "psr/nordea_pain_002_v3_txn_reject.xml")), Limits{})
	if err != nil || IsHACGroup(&rep.Group) {
		t.Errorf("IsHACGroup on a PSR: %v", err)
	}
}
