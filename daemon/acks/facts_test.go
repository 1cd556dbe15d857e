package acks

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestFactsFromHACAndPTK: what the HAC and PTK entries of one order say,
// on the shipped samples (German HAC, French PTK).
func TestFactsFromHACAndPTK(t *testing.T) {
	es, err := ParseHAC(bytes.NewReader(readTestdata(t, "hac/acquit_hac_de_ebics25.xml")), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	byOrder := map[string][]HACEntry{}
	for _, e := range es {
		byOrder[e.OrderID] = append(byOrder[e.OrderID], e)
	}
	if f := FactsFromHAC("hac1", byOrder["A107"]); f.GroupStatus != StatusACTC || f.Stage != StageFinal {
		t.Errorf("A107 = %+v", f)
	}
	bad := FactsFromHAC("hac1", byOrder["A108"])
	if bad.GroupStatus != StatusRJCT || bad.Stage != StageFinal || len(bad.GroupReasons) != 2 || bad.GroupReasons[0].Code != "TD03" ||
		!strings.Contains(bad.GroupReasons[1].Text(), "Auftrag abgelehnt") {
		t.Errorf("A108 = %+v", bad)
	}
	// Only the first steps so far: signature verified, no status yet.
	if f := FactsFromHAC("hac0", byOrder["A107"][:2]); f.GroupStatus != StatusNone || f.Stage != StageSignatureVerified {
		t.Errorf("partial = %+v", f)
	}
	// A negative step without its final entry stays pending with the reason.
	if f := FactsFromHAC("hac2", byOrder["A108"][:2]); f.GroupStatus != StatusPDNG || f.Stage == StageFinal || len(f.GroupReasons) == 0 {
		t.Errorf("negative step = %+v", f)
	}
	p, _ := PTKProfileByName("fr")
	res, err := ParsePTK(readTestdata(t, "ptk/ptk_fr_sample.txt"), p, time.Date(2026, 4, 7, 13, 0, 0, 0, time.UTC), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pt := map[string][]PTKEntry{}
	for _, e := range res.Entries {
		pt[e.OrderID] = append(pt[e.OrderID], e)
	}
	if f := FactsFromPTK("ptk1", pt["A107"]); f.GroupStatus != StatusACTC || f.Stage != StageFinal {
		t.Errorf("PTK A107 = %+v", f)
	}
	if f := FactsFromPTK("ptk1", pt["A108"]); f.GroupStatus != StatusRJCT || len(f.GroupReasons) == 0 || f.GroupReasons[0].Code != "DS0D" {
		t.Errorf("PTK A108 = %+v", f)
	}
}
