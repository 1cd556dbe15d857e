package acks

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// PTKOutcome classifies one PTK line.
type PTKOutcome string

// PTK outcomes.
const (
	PTKInfo     PTKOutcome = "info"     // a step that says nothing good or bad
	PTKPositive PTKOutcome = "positive" // a step that went well
	PTKNegative PTKOutcome = "negative" // a failure or a refusal
)

// PTKProfileSpec is the configurable form of a PTK profile, as a bank dialect
// supplies it (YAML/JSON friendly). Compile it with Compile.
type PTKProfileSpec struct {
	Name     string `json:"name" yaml:"name"`
	Language string `json:"language" yaml:"language"` // de, en, fr
	// Events are line patterns producing an entry, tried in order. Named
	// groups: order_id (required), time or date+time, order_type, user,
	// partner, code, outcome, text. Other names are refused.
	Events []string `json:"events" yaml:"events"`
	// Details are patterns of continuation lines attached to the previous
	// entry (protocol extract, BTF line...). A detail line before any entry
	// is reported as unmatched.
	Details []string `json:"details" yaml:"details"`
	// Ignore are layout lines (titles, rulers, column headers) that are
	// neither entries nor unmatched. Blank lines are always ignored.
	Ignore []string `json:"ignore" yaml:"ignore"`
	// Positive, Negative and Final are tested on the outcome and text groups
	// (else on the whole line). Negative wins; then a code group outside
	// TS01, TS04, DS01, DS05, DS06, DS07 makes the line negative; then
	// Positive (or one of those codes) makes it positive; else it is info.
	Positive string `json:"positive" yaml:"positive"`
	Negative string `json:"negative" yaml:"negative"`
	Final    string `json:"final" yaml:"final"`
	// TimeLayouts parse the time group (or "date time"), in Go layout
	// syntax. A layout without a year takes it from the reference time.
	TimeLayouts []string `json:"time_layouts" yaml:"time_layouts"`
	// TimeZone is an IANA zone name for times without offset ("" = UTC).
	TimeZone string `json:"time_zone" yaml:"time_zone"`
}

// PTKProfile is a compiled PTK profile.
type PTKProfile struct {
	Spec     PTKProfileSpec
	events   []*regexp.Regexp
	details  []*regexp.Regexp
	ignore   []*regexp.Regexp
	positive *regexp.Regexp
	negative *regexp.Regexp
	final    *regexp.Regexp
	loc      *time.Location
}

var ptkGroups = map[string]bool{"order_id": true, "time": true, "date": true, "order_type": true, "user": true,
	"partner": true, "code": true, "outcome": true, "text": true}

// Compile checks and compiles a profile. Errors wrap ErrPTK.
func (s PTKProfileSpec) Compile() (*PTKProfile, error) {
	p := &PTKProfile{Spec: s, loc: time.UTC}
	bad := func(format string, args ...any) error {
		return &ParseError{Kind: ErrPTK, Format: "ptk", Detail: fmt.Sprintf("profile %s: ", s.Name) + fmt.Sprintf(format, args...)}
	}
	if len(s.Events) == 0 {
		return nil, bad("no event pattern")
	}
	for i, src := range s.Events {
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, bad("event pattern %d: %v", i, err)
		}
		hasOrder := false
		for _, n := range re.SubexpNames()[1:] {
			if n == "" {
				continue
			}
			if !ptkGroups[n] {
				return nil, bad("event pattern %d: unknown group %q", i, n)
			}
			hasOrder = hasOrder || n == "order_id"
		}
		if !hasOrder {
			return nil, bad("event pattern %d has no order_id group", i)
		}
		p.events = append(p.events, re)
	}
	for _, list := range []struct {
		src []string
		dst *[]*regexp.Regexp
	}{{s.Details, &p.details}, {s.Ignore, &p.ignore}} {
		for i, src := range list.src {
			re, err := regexp.Compile(src)
			if err != nil {
				return nil, bad("pattern %d: %v", i, err)
			}
			*list.dst = append(*list.dst, re)
		}
	}
	for _, o := range []struct {
		src string
		dst **regexp.Regexp
	}{{s.Positive, &p.positive}, {s.Negative, &p.negative}, {s.Final, &p.final}} {
		if o.src == "" {
			continue
		}
		re, err := regexp.Compile(o.src)
		if err != nil {
			return nil, bad("outcome pattern: %v", err)
		}
		*o.dst = re
	}
	if s.TimeZone != "" {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			return nil, bad("time zone %q: %v", s.TimeZone, err)
		}
		p.loc = loc
	}
	return p, nil
}

// PTKEntry is one event line of a PTK protocol.
type PTKEntry struct {
	Line      int    // 1-based line number
	Raw       string // the line as read
	Time      time.Time
	TimeText  string
	OrderID   string
	OrderType string
	UserID    string
	PartnerID string
	Code      string
	Outcome   PTKOutcome
	Final     bool
	Text      string   // outcome/text groups
	Details   []string // continuation lines
}

// PTKLine is a line no pattern matched.
type PTKLine struct {
	Line int
	Text string
}

// PTKResult is a parsed PTK protocol. Raw always holds the whole text
// (decoded to UTF-8); every non-blank line is an entry, a detail of an
// entry, an ignored layout line, or in Unmatched.
type PTKResult struct {
	Profile   string
	Raw       string
	Entries   []PTKEntry
	Unmatched []PTKLine
}

// ParsePTK parses a PTK protocol with a profile. data may be UTF-8 or
// ISO-8859-1/Windows-1252 (decoded when not valid UTF-8). ref gives the
// year to dates that have none (a date more than a day after ref is taken
// from the year before). Binary data (NUL bytes), oversized input
// (Limits.MaxBytes) or lines (Limits.MaxTokenBytes) are refused with ErrPTK,
// ErrTooLarge and ErrTokenTooLarge.
func ParsePTK(data []byte, p *PTKProfile, ref time.Time, lim Limits) (*PTKResult, error) {
	lim = lim.withDefaults()
	fail := func(kind error, detail string) error {
		return &ParseError{Kind: kind, Format: "ptk", Detail: detail}
	}
	if p == nil {
		return nil, fail(ErrPTK, "no profile")
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fail(ErrTooLarge, "")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fail(ErrPTK, "binary data (NUL byte)")
	}
	if IsZip(data) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("<")) {
		return nil, fail(ErrPTK, "not a text protocol (XML or archive)")
	}
	text := decodeText(data)
	res := &PTKResult{Profile: p.Spec.Name, Raw: text}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		if len(line) > lim.MaxTokenBytes {
			return nil, &ParseError{Kind: ErrTokenTooLarge, Format: "ptk", Detail: fmt.Sprintf("line %d", n)}
		}
		line = strings.TrimRight(line, " \t\r\f")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if e, ok := p.event(line, n, ref); ok {
			if len(res.Entries) >= lim.MaxCollect {
				return nil, &ParseError{Kind: ErrTooMany, Format: "ptk", Detail: fmt.Sprintf("more than %d entries", lim.MaxCollect)}
			}
			res.Entries = append(res.Entries, e)
			continue
		}
		if matchAny(p.ignore, line) {
			continue
		}
		if matchAny(p.details, line) && len(res.Entries) > 0 {
			last := &res.Entries[len(res.Entries)-1]
			if len(last.Details) >= lim.MaxRepeat*16 {
				return nil, &ParseError{Kind: ErrTooMany, Format: "ptk", Detail: fmt.Sprintf("line %d: too many detail lines", n)}
			}
			last.Details = append(last.Details, strings.TrimSpace(line))
			continue
		}
		res.Unmatched = append(res.Unmatched, PTKLine{Line: n, Text: line})
	}
	return res, nil
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func (p *PTKProfile) event(line string, n int, ref time.Time) (PTKEntry, bool) {
	for _, re := range p.events {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		e := PTKEntry{Line: n, Raw: line}
		var date, clock, outcome, text string
		for i, name := range re.SubexpNames() {
			v := strings.TrimSpace(m[i])
			if v == "-" {
				v = ""
			}
			switch name {
			case "order_id":
				e.OrderID = v
			case "order_type":
				e.OrderType = v
			case "user":
				e.UserID = v
			case "partner":
				e.PartnerID = v
			case "code":
				e.Code = v
			case "date":
				date = v
			case "time":
				clock = v
			case "outcome":
				outcome = v
			case "text":
				text = v
			}
		}
		if e.OrderID == "" {
			continue
		}
		e.TimeText = strings.TrimSpace(date + " " + clock)
		e.Time = p.parseTime(e.TimeText, ref)
		e.Text = strings.TrimSpace(outcome + " " + text)
		subject := e.Text
		if subject == "" {
			subject = line
		}
		code := strings.ToUpper(e.Code)
		switch {
		case p.negative != nil && p.negative.MatchString(subject):
			e.Outcome = PTKNegative
		case code != "" && !positiveCodes[code]:
			e.Outcome = PTKNegative
		case p.positive != nil && p.positive.MatchString(subject), positiveCodes[code]:
			e.Outcome = PTKPositive
		default:
			e.Outcome = PTKInfo
		}
		e.Final = p.final != nil && p.final.MatchString(subject)
		return e, true
	}
	return PTKEntry{}, false
}

func (p *PTKProfile) parseTime(s string, ref time.Time) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range p.Spec.TimeLayouts {
		t, err := time.ParseInLocation(layout, s, p.loc)
		if err != nil {
			continue
		}
		if t.Year() == 0 && !ref.IsZero() {
			r := ref.In(p.loc)
			t = time.Date(r.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), p.loc)
			if t.After(ref.Add(24 * time.Hour)) {
				t = t.AddDate(-1, 0, 0)
			}
		}
		return t
	}
	return time.Time{}
}

// decodeText returns data as UTF-8: unchanged when valid, else read as
// Windows-1252 (a superset of the printable ISO-8859-1).
func decodeText(data []byte) string {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if utf8.Valid(data) {
		return string(data)
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(data)
	if err != nil {
		out, _ = charmap.ISO8859_1.NewDecoder().Bytes(data)
	}
	return string(out)
}
