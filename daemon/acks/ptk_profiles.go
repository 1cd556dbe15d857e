package acks

import (
	"fmt"
	"sort"
	"strings"

	_ "time/tzdata" // the default profiles name IANA zones; do not depend on the host
)

// defaultPTKSpecs are the shipped profiles. Banks whose PTK differs supply
// their own PTKProfileSpec in their dialect.
var defaultPTKSpecs = map[string]PTKProfileSpec{
	"de": {
		Name:     "de",
		Language: "de",
		Events: []string{
			`^(?P<date>\d{2}\.\d{2}\.\d{4}) (?P<time>\d{2}:\d{2}:\d{2}) +(?P<order_type>[A-Z0-9]{3}) +(?P<order_id>[A-Z0-9]{4}) +(?:(?P<user>[A-Z0-9]{2,}) +)?(?P<outcome>[^(]+)(?: \((?P<code>[A-Z0-9]{4})\))?(?: +(?P<text>.+))?$`,
		},
		Details:     []string{`^\s{2,}\S`},
		Ignore:      []string{`^K U N D E N`, `^Kunden-ID\s*:`, `^Erstellt`, `^[=\-]{10,}$`, `^Datum\s+Uhrzeit`},
		Positive:    `(?i)erfolgreich|positiv|ausgef(ü|ue)hrt|\bok\b`,
		Negative:    `(?i)fehler|abgelehnt|negativ|storn|abgebrochen|nicht erfolgreich|ung(ü|ue)ltig|zur(ü|ue)ckgewiesen`,
		Final:       `(?i)auftrag abgeschlossen|auftrag (endg(ü|ue)ltig )?abgelehnt`,
		TimeLayouts: []string{"02.01.2006 15:04:05", "02.01.2006 15:04"},
		TimeZone:    "Europe/Berlin",
	},
	"en": {
		Name:     "en",
		Language: "en",
		Events: []string{
			`^(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}(?::\d{2})?) \| Order (?P<order_id>[A-Z0-9]{4}) \| Type (?P<order_type>[A-Z0-9]{3}) \| User (?P<user>\S+) \| (?P<outcome>[^\[]+)(?: \[(?P<code>[A-Z0-9]{4})\])?(?: +(?P<text>.+))?$`,
		},
		Details:     []string{`^\s{2,}\S`},
		Ignore:      []string{`^CUSTOMER PROTOCOL`, `^Customer ID\s*:`, `^Created\s*:`, `^[=\-]{10,}$`},
		Positive:    `(?i)successful|positive|\bok\b|accepted|completed`,
		Negative:    `(?i)fail|error|reject|negative|refused|cancel|invalid|not authori[sz]ed`,
		Final:       `(?i)order completed|order (finally )?rejected`,
		TimeLayouts: []string{"2006-01-02 15:04:05", "2006-01-02 15:04"},
		TimeZone:    "UTC",
	},
	"fr": {
		Name:     "fr",
		Language: "fr",
		Events: []string{
			`^(?P<date>\d{2}/\d{2}(?:/\d{4})?) (?P<time>\d{2}h\d{2}(?::\d{2})?) Ordre (?P<order_id>[A-Z0-9]{4}) Type (?P<order_type>[A-Z0-9]{3})(?: Utilisateur (?P<user>\S+))? : (?P<outcome>[^(]+)(?: \((?P<code>[A-Z0-9]{4})\))?(?: +(?P<text>.+))?$`,
		},
		Details:     []string{`^\s{2,}\S`},
		Ignore:      []string{`^ACCUSE DE RECEPTION`, `^Abonn[ée]\s*:`, `^Edit[ée] le`, `^[=\-]{10,}$`, `^Fin du protocole`},
		Positive:    `(?i)succ[èe]s|v[ée]rifi[ée]e|positif|effectu[ée]|accept[ée]`,
		Negative:    `(?i)[ée]chec|erreur|rejet|refus|n[ée]gatif|annul|invalide`,
		Final:       `(?i)ordre termin[ée]`,
		TimeLayouts: []string{"02/01/2006 15h04", "02/01/2006 15h04:05", "02/01 15h04", "02/01 15h04:05"},
		TimeZone:    "Europe/Paris",
	},
}

var ptkAliases = map[string]string{"german": "de", "deutsch": "de", "english": "en", "french": "fr", "francais": "fr", "français": "fr"}

// PTKProfileNames lists the shipped profiles.
func PTKProfileNames() []string {
	var out []string
	for k := range defaultPTKSpecs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefaultPTKProfileSpec returns a copy of a shipped profile ("de", "en",
// "fr", or german/english/french), to adapt for a bank.
func DefaultPTKProfileSpec(name string) (PTKProfileSpec, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := ptkAliases[n]; ok {
		n = a
	}
	s, ok := defaultPTKSpecs[n]
	if !ok {
		return PTKProfileSpec{}, false
	}
	s.Events = append([]string(nil), s.Events...)
	s.Details = append([]string(nil), s.Details...)
	s.Ignore = append([]string(nil), s.Ignore...)
	s.TimeLayouts = append([]string(nil), s.TimeLayouts...)
	return s, true
}

// PTKProfileByName compiles a shipped profile.
func PTKProfileByName(name string) (*PTKProfile, error) {
	s, ok := DefaultPTKProfileSpec(name)
	if !ok {
		return nil, &ParseError{Kind: ErrPTK, Format: "ptk", Detail: fmt.Sprintf("no PTK profile %q (have %s)", clip(name), strings.Join(PTKProfileNames(), ", "))}
	}
	return s.Compile()
}
