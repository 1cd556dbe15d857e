package sim

// A long-running xmllint that validates many requests against one
// compiled schema. xmllint validates every file named on its command line
// in turn, compiling the schema once; here those files are pipes the
// simulator writes each request into as it arrives (inherited by xmllint,
// named /proc/self/fd/N, so nothing is left on disk and a simulator that
// dies leaves xmllint reading the ends of its pipes, and exiting). After
// each request a marker document, which the schema refuses in a known
// way, goes into the next pipe: when xmllint reports on the marker, every
// line it wrote about the request is in. Starting xmllint and compiling an
// EBICS schema costs about 20 ms of CPU, validating a 512 KiB upload
// segment about 7: the session saves the former on every request.
// Whatever goes wrong with a session (a timeout, an unexpected report,
// xmllint gone), it is ended and the request is validated by an xmllint
// run of its own, as before.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// sessionDocs is how many requests one xmllint session validates before
// the next one is started (a variable for the tests).
var sessionDocs = 64

// markerDoc is not valid against any EBICS schema (no such root element).
var markerDoc = []byte("<acquitSimMarker/>")

// lintSession is one running xmllint reading a series of pipes.
type lintSession struct {
	cmd    *exec.Cmd
	names  []string   // the pipes as xmllint names them: request, marker, ...
	writes []*os.File // our ends, closed once written
	next   int        // the next request's index

	mu    sync.Mutex
	lines []string // xmllint's report lines not yet consumed
	eof   bool
	more  chan struct{} // signalled when lines grow or the report ends
}

// startSession starts xmllint with a schema over sessionDocs pairs of
// pipes.
func startSession(xmllint, schema string) (*lintSession, error) {
	s := &lintSession{more: make(chan struct{}, 1)}
	args := []string{"--noout", "--nonet", "--schema", schema}
	var reads []*os.File
	closeAll := func() {
		for _, f := range reads {
			f.Close()
		}
		for _, f := range s.writes {
			f.Close()
		}
	}
	for i := 0; i < 2*sessionDocs; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		reads, s.writes = append(reads, r), append(s.writes, w)
		s.names = append(s.names, fmt.Sprintf("/proc/self/fd/%d", 3+i))
	}
	args = append(args, s.names...)
	s.cmd = exec.Command(xmllint, args...)
	s.cmd.ExtraFiles = reads
	out, err := s.cmd.StderrPipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	err = s.cmd.Start()
	for _, f := range reads { // xmllint has them now
		f.Close()
	}
	if err != nil {
		for _, f := range s.writes {
			f.Close()
		}
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
			s.signal()
		}
		s.mu.Lock()
		s.eof = true
		s.mu.Unlock()
		s.signal()
	}()
	return s, nil
}

func (s *lintSession) signal() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// full reports whether the session has no pipe left for a request.
func (s *lintSession) full() bool { return s.next >= len(s.names) }

// end stops xmllint and closes the pipes.
func (s *lintSession) end() {
	for _, f := range s.writes[s.next:] {
		f.Close()
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

var errSessionBroken = errors.New("xmllint session out of step")

// check validates one document: ok, or the report lines about it, in
// the form a run over stdin gives them ("-" for the file name).
func (s *lintSession) check(body []byte, deadline time.Time) (ok bool, report []string, err error) {
	i := s.next
	s.next += 2
	doc, mark := s.names[i], s.names[i+1]
	if err := writePipe(s.writes[i], body, deadline); err != nil {
		s.writes[i+1].Close()
		return false, nil, err
	}
	if err := writePipe(s.writes[i+1], markerDoc, deadline); err != nil {
		return false, nil, err
	}
	about := func(l, name string) bool { // a line of xmllint's report about file name
		return strings.HasPrefix(l, name+":") || strings.HasPrefix(l, name+" ")
	}
	var got []string
	for {
		s.mu.Lock()
		done := -1
		for j, l := range s.lines {
			if l == mark+" fails to validate" || l == mark+" validates" {
				done = j
				break
			}
		}
		if done >= 0 {
			got = s.lines[:done+1]
			s.lines = s.lines[done+1:]
		}
		eof := s.eof
		s.mu.Unlock()
		if done >= 0 {
			break
		}
		if eof {
			return false, nil, errSessionBroken
		}
		select {
		case <-s.more:
		case <-time.After(time.Until(deadline)):
			return false, nil, fmt.Errorf("xmllint session: timeout")
		}
	}
	// The request's lines come before the first line about the marker.
	for j, l := range got {
		if about(l, mark) {
			got = got[:j]
			break
		}
	}
	for j, l := range got {
		if about(l, doc) {
			got[j] = "-" + strings.TrimPrefix(l, doc)
		}
	}
	if len(got) > 0 && got[len(got)-1] == "- validates" {
		return true, nil, nil
	}
	return false, got, nil
}

// writePipe writes b into one of the session's pipes and closes it (the
// end of that document for xmllint).
func writePipe(f *os.File, b []byte, deadline time.Time) error {
	f.SetWriteDeadline(deadline)
	_, err := f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
