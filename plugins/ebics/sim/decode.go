package sim

// Incremental decoding of upload order data. The transaction key comes
// with the initialisation, so a bank can decode each segment as it
// arrives (base64 -> E002 -> inflate, and the order data digest), instead
// of decoding the whole order after the last segment. Each upload has one
// decoding goroutine fed the accepted segments in order through a channel
// that holds at most one segment ahead, so the bank answers segment n while
// segment n-1 is still being decoded, with bounded memory. The last
// segment's answer waits for the decoder (complete): it carries the result
// of every check, as before. Without Config.SpoolDir the decoded data is
// not held: the order is kept as its segments (Order.segments). A
// decoding failure is kept and reported with the same return code at the
// last segment, where the whole-order decoding used to report it.

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// orderDecoder decodes one upload's segments as they arrive.
type orderDecoder struct {
	segs   chan string
	done   chan struct{}
	closed bool // segs closed (finish or abort)

	// Results, valid once done is closed.
	size   int64
	digest []byte
	err    error
	path   string // spool mode: the order data file
}

// startDecoder starts decoding an upload's order data with the (unwrapped)
// transaction key, into memory or, with Config.SpoolDir, into a file
// there.
func (s *Sim) startDecoder(t *tx, key []byte) *orderDecoder {
	d := &orderDecoder{segs: make(chan string, 1), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.run(s, t.id, key)
		// Whatever comes after the end (or after a failure) is not read, as
		// the whole-order decoding did not read it; feeders are released by
		// done.
	}()
	return d
}

func (d *orderDecoder) run(s *Sim, txID string, key []byte) {
	zr, err := protocol.NewOrderDataReader(&segmentReader{ch: d.segs}, key)
	if err != nil {
		d.err = err
		return
	}
	defer zr.Close()
	h := s.orderHash()
	var sink io.Writer
	var out *os.File
	var bw *bufio.Writer
	if s.cfg.SpoolDir != "" {
		d.path = filepath.Join(s.cfg.SpoolDir, "order-"+txID+".xml")
		if out, err = os.Create(d.path); err != nil {
			d.err, d.path = err, ""
			return
		}
		bw = bufio.NewWriterSize(out, 256<<10)
		sink = bw
	} else {
		// Memory mode keeps the order as it arrived (its segments, see
		// Order.segments), 10 to 20 times smaller than the order data:
		// the decoded data is only counted and hashed here.
		sink = io.Discard
	}
	d.size, err = pipeCopy(io.MultiWriter(sink, h), io.LimitReader(zr, s.cfg.MaxOrderSize+1))
	if err == nil && d.size > s.cfg.MaxOrderSize {
		err = &protocol.CryptoError{Op: "inflate", Err: protocol.ErrInflateLimit}
	}
	if bw != nil && err == nil {
		err = bw.Flush()
	}
	if out != nil {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		d.err = err
		if d.path != "" {
			os.Remove(d.path)
			d.path = ""
		}
		return
	}
	d.digest = h.Sum(nil)
}

// feed hands the next accepted segment to the decoder; it waits only while
// the decoder still has the previous segment queued.
func (d *orderDecoder) feed(seg string) {
	if d.closed {
		return
	}
	select {
	case d.segs <- seg:
	case <-d.done:
	}
}

// finish ends the input after the last segment and waits for the result.
func (d *orderDecoder) finish() {
	if !d.closed {
		d.closed = true
		close(d.segs)
	}
	<-d.done
}

// abort stops an abandoned upload's decoder and removes what it wrote.
func (d *orderDecoder) abort() {
	d.finish()
	if d.path != "" {
		os.Remove(d.path)
		d.path = ""
	}
}

// decodeSegments decodes an order kept as its segments (memory mode),
// already verified at reception.
func decodeSegments(segs []string, key []byte, size int64) ([]byte, error) {
	r, err := segmentsReader(segs, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, 0, size)
	buf := bytes.NewBuffer(b)
	_, err = io.Copy(buf, io.LimitReader(r, size))
	return buf.Bytes(), err
}

// segmentsReader reads the order data of an order kept as its segments.
func segmentsReader(segs []string, key []byte) (io.ReadCloser, error) {
	rs := make([]io.Reader, len(segs))
	for i, s := range segs {
		rs[i] = strings.NewReader(s)
	}
	return protocol.NewOrderDataReader(io.MultiReader(rs...), key)
}

// segmentReader reads the segments fed to a decoder, in order; EOF once
// the input is closed.
type segmentReader struct {
	ch  <-chan string
	cur string
}

func (r *segmentReader) Read(p []byte) (int, error) {
	for r.cur == "" {
		s, ok := <-r.ch
		if !ok {
			return 0, io.EOF
		}
		r.cur = s
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// pipeCopy copies r to w as io.Copy does, with the reading (base64, E002,
// inflate) in a goroutine of its own, a few buffers ahead of the writing
// (the order data digest, the spool file) in this one: the two halves of
// the decoding run on two cores. It returns once that goroutine has ended.
func pipeCopy(w io.Writer, r io.Reader) (int64, error) {
	type chunk struct {
		b   []byte
		err error
	}
	const bufs = 3
	full, free := make(chan chunk, bufs), make(chan []byte, bufs)
	for range bufs {
		free <- make([]byte, 256<<10)
	}
	stop, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, b)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case full <- chunk{b[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-ended }()
	var total int64
	for c := range full {
		if len(c.b) > 0 {
			n, err := w.Write(c.b)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, c.err
		}
		free <- c.b[:cap(c.b)]
	}
	return total, nil // not reached: full is never closed
}
