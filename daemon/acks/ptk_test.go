package acks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePTKDefaultProfiles(t *testing.T) {
	type gold struct {
		Line                      int
		Time, OrderID, Type, User string
		Code                      string
		Outcome                   PTKOutcome
		Final                     bool
		Details                   int
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	paris, _ := time.LoadLocation("Europe/Paris")
	ts := func(loc *time.Location, y int, mo time.Month, d, h, mi, s int) string {
		return time.Date(y, mo, d, h, mi, s, 0, loc).UTC().Format(time.RFC3339)
	}
	cases := []struct {
		profile, file string
		ref           time.Time
		want          []gold
		unmatched     []string
		textCheck     string
	}{
		{"de", "ptk_de_sample.txt", time.Time{}, []gold{
			{7, ts(berlin, 2026, 11, 10, 8, 41, 5), "A107", "CCT", "ACQUSER1", "TS01", PTKPositive, false, 0},
			{8, ts(berlin, 2026, 11, 10, 8, 41, 7), "A107", "CCT", "ACQUSER1", "DS01", PTKPositive, false, 0},
			{9, ts(berlin, 2026, 11, 10, 8, 41, 7), "A107", "CCT", "", "", PTKPositive, true, 4},
			{14, ts(berlin, 2026, 11, 10, 9, 2, 11), "A108", "CDD", "ACQUSER1", "TS01", PTKPositive, false, 0},
			{15, ts(berlin, 2026, 11, 10, 9, 2, 12), "A108", "CDD", "ACQUSER1", "TD03", PTKNegative, false, 0},
			{16, ts(berlin, 2026, 11, 10, 9, 2, 12), "A108", "CDD", "", "", PTKNegative, true, 0},
			{17, ts(berlin, 2026, 11, 10, 9, 30, 0), "A110", "CCT", "ACQUSER1", "DS06", PTKPositive, false, 0},
			{18, ts(berlin, 2026, 11, 10, 10, 4, 59), "A109", "HAC", "ACQUSER1", "", PTKPositive, false, 0},
		}, []string{"Wartungshinweis: am 15.11.2026 ist der Server von 02:00 bis 04:00 nicht erreichbar"}, "Summe der Beträge (EUR)  : 1.234,56"},
		{"en", "ptk_en_sample.txt", time.Time{}, []gold{
			{5, "2026-11-10T08:41:05Z", "A107", "CCT", "ACQUSER1", "TS01", PTKPositive, false, 0},
			{6, "2026-11-10T08:41:07Z", "A107", "CCT", "ACQUSER1", "DS01", PTKPositive, false, 0},
			{7, "2026-11-10T08:41:07Z", "A107", "CCT", "", "", PTKPositive, true, 2},
			{10, "2026-11-10T09:02:12Z", "A108", "CDD", "ACQUSER1", "DS0H", PTKNegative, false, 0},
			{11, "2026-11-10T09:02:12Z", "A108", "CDD", "", "", PTKNegative, true, 0},
		}, []string{"ATTENTION: new EBICS bank keys will be published on 2026-12-01"}, ""},
		{"fr", "ptk_fr_sample.txt", time.Date(2026, 4, 7, 12, 0, 0, 0, time.UTC), []gold{
			{5, ts(paris, 2026, 4, 7, 11, 35, 0), "A106", "PTK", "ACQUSER1", "", PTKPositive, false, 0},
			{6, ts(paris, 2026, 4, 7, 11, 51, 0), "A107", "FUL", "ACQUSER1", "TS01", PTKPositive, false, 0},
			{7, ts(paris, 2026, 4, 7, 11, 51, 0), "A107", "FUL", "ACQUSER1", "DS01", PTKPositive, false, 0},
			{8, ts(paris, 2026, 4, 7, 11, 51, 0), "A107", "FUL", "", "", PTKPositive, true, 3},
			{12, ts(paris, 2026, 4, 7, 12, 10, 0), "A108", "FUL", "ACQUSER1", "DS0D", PTKNegative, false, 0},
			{13, ts(paris, 2026, 4, 7, 12, 10, 0), "A108", "FUL", "", "", PTKNegative, true, 0},
		}, []string{"Message de la banque : maintenance prévue le 12/04 de 22h à 23h"}, ""},
	}
	for _, c := range cases {
		t.Run(c.profile, func(t *testing.T) {
			p, err := PTKProfileByName(c.profile)
			if err != nil {
				t.Fatal(err)
			}
			data := readTestdata(t, "ptk/"+c.file)
			res, err := ParsePTK(data, p, c.ref, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != len(c.want) {
				for _, e := range res.Entries {
					t.Logf("%+v", e)
				}
				t.Fatalf("%d entries, want %d; unmatched %+v", len(res.Entries), len(c.want), res.Unmatched)
			}
			for i, w := range c.want {
				e := res.Entries[i]
				got := gold{e.Line, e.Time.UTC().Format(time.RFC3339), e.OrderID, e.OrderType, e.UserID, e.Code, e.Outcome, e.Final, len(e.Details)}
				if got != w {
					t.Errorf("entry %d = %+v\nwant       %+v\nraw %q", i, got, w, e.Raw)
				}
				if !strings.Contains(res.Raw, e.Raw) {
					t.Errorf("raw line %q not in Raw", e.Raw)
				}
			}
			var un []string
			for _, u := range res.Unmatched {
				un = append(un, u.Text)
			}
			if strings.Join(un, "|") != strings.Join(c.unmatched, "|") {
				t.Errorf("unmatched = %q, want %q", un, c.unmatched)
			}
			if c.textCheck != "" && !strings.Contains(strings.Join(res.Entries[2].Details, "\n"), c.textCheck) {
				t.Errorf("details = %q (latin1 not decoded?)", res.Entries[2].Details)
			}
		})
	}
}

func TestParsePTKWrongProfileKeepsEverything(t *testing.T) {
	// The French protocol read with the German profile: nothing matches, so
	// every non-layout line is reported, none dropped.
	p, _ := PTKProfileByName("german")
	data := readTestdata(t, "ptk/ptk_fr_sample.txt")
	res, err := ParsePTK(data, p, time.Now(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	nonBlank := 0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "-----") {
			nonBlank++
		}
	}
	if len(res.Entries) != 0 || len(res.Unmatched) != nonBlank {
		t.Errorf("entries %d, unmatched %d, want 0 and %d", len(res.Entries), len(res.Unmatched), nonBlank)
	}
}

func TestParsePTKYearRollover(t *testing.T) {
	p, _ := PTKProfileByName("fr")
	data := []byte("30/12 23h50 Ordre Z001 Type FUL Utilisateur U1 : Remise transmise avec succès (TS01)\n")
	res, err := ParsePTK(data, p, time.Date(2027, 1, 2, 8, 0, 0, 0, time.UTC), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if y := res.Entries[0].Time.Year(); y != 2026 {
		t.Errorf("year = %d, want 2026", y)
	}
}

func TestPTKHostileAndProfiles(t *testing.T) {
	p, _ := PTKProfileByName("en")
	cases := []struct {
		name string
		data []byte
		lim  Limits
		kind error
	}{
		{"NUL bytes", []byte("2026-11-10 08:41:05 | Order A107\x00"), Limits{}, ErrPTK},
		{"XML given as PTK", readTestdata(t, "hac/acquit_hac_de_ebics25.xml"), Limits{}, ErrPTK},
		{"ZIP given as PTK", readTestdata(t, "psr/acquit_psr_container.zip"), Limits{}, ErrPTK},
		{"too large", []byte(strings.Repeat("x\n", 100)), Limits{MaxBytes: 50}, ErrTooLarge},
		{"line too long", []byte(strings.Repeat("x", 2000)), Limits{MaxTokenBytes: 1000}, ErrTokenTooLarge},
		{"too many entries", []byte(strings.Repeat("2026-11-10 08:41:05 | Order A107 | Type CCT | User U | ok\n", 20)), Limits{MaxCollect: 10}, ErrTooMany},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePTK(c.data, p, time.Time{}, c.lim)
			if !errors.Is(err, c.kind) {
				t.Errorf("err = %v, want %v", err, c.kind)
			}
		})
	}
	specs := []struct {
		name string
		spec PTKProfileSpec
	}{
		{"no events", PTKProfileSpec{Name: "x"}},
		{"bad regexp", PTKProfileSpec{Name: "x", Events: []string{`(?P<order_id>[`}}},
		{"no order_id", PTKProfileSpec{Name: "x", Events: []string{`^(?P<time>\d+)`}}},
		{"unknown group", PTKProfileSpec{Name: "x", Events: []string{`^(?P<order_id>\w{4}) (?P<amount>\d+)`}}},
		{"bad zone", PTKProfileSpec{Name: "x", Events: []string{`^(?P<order_id>\w{4})`}, TimeZone: "Mars/Olympus"}},
		{"bad outcome", PTKProfileSpec{Name: "x", Events: []string{`^(?P<order_id>\w{4})`}, Negative: "("}},
	}
	for _, s := range specs {
		if _, err := s.spec.Compile(); !errors.Is(err, ErrPTK) {
			t.Errorf("%s: err = %v", s.name, err)
		}
	}
	if _, err := PTKProfileByName("klingon"); !errors.Is(err, ErrPTK) {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := ParsePTK([]byte("x"), nil, time.Time{}, Limits{}); !errors.Is(err, ErrPTK) {
		t.Errorf("nil profile: %v", err)
	}
}

func FuzzParsePTK(f *testing.F) {
	for _, n := range []string{"ptk_de_sample.txt", "ptk_en_sample.txt", "ptk_fr_sample.txt"} {
		f.Add(readTestdata(f, "ptk/"+n))
	}
	profiles := map[string]*PTKProfile{}
	for _, n := range PTKProfileNames() {
		p, err := PTKProfileByName(n)
		if err != nil {
			f.Fatal(err)
		}
		profiles[n] = p
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			res, err := ParsePTK(data, p, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Limits{MaxBytes: 1 << 20, MaxTokenBytes: 4096})
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			for _, e := range res.Entries {
				if e.OrderID == "" || !strings.Contains(res.Raw, e.Raw) {
					t.Fatalf("entry without OrderID or raw: %+v", e)
				}
			}
		}
	})
}
