package sim

// Incremental decoding of upload order data. The transaction key comes
// with the initialisation, so a bank can decode each segment as it
// arrives (base64 -> E002 -> inflate, and the order data digest), instead
// of decoding the whole order after the last segment. Each upload has one
// decoding goroutine fed the accepted segments in order through a channel
// that holds at most one segment ahead, so the bank answers segment n while
// segment n-1 is still being decoded, with bounded memory. The last
// segment's answer waits for the decoder (complete): it carries the result
// of every check, as before. A decoding failure is kept and reported with
// the same return code at the last segment, where the whole-order decoding
// used to report it.

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"

	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// decodeChunk is the size of the pieces decoded order data is held in
// (memory mode): no buffer is grown and copied as the order grows.
const decodeChunk = 1 << 20

// orderDecoder decodes one upload's segments as they arrive.
type orderDecoder struct {
	segs   chan string
	done   chan struct{}
	closed bool // segs closed (finish or abort)

	// Results, valid once done is closed.
	size   int64
	digest []byte
	err    error
	chunks [][]byte // memory mode: the order data
	path   string   // spool mode: the order data file
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
		sink = (*chunkWriter)(&d.chunks)
	}
	d.size, err = io.Copy(io.MultiWriter(sink, h), io.LimitReader(zr, s.cfg.MaxOrderSize+1))
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
		d.err, d.chunks = err, nil
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
	d.chunks = nil
}

// joinChunks joins decoded order data held in chunks.
func joinChunks(chunks [][]byte, size int64) []byte {
	b := make([]byte, 0, size)
	for _, c := range chunks {
		b = append(b, c...)
	}
	return b
}

// chunksReader reads decoded order data held in chunks.
func chunksReader(chunks [][]byte) io.Reader {
	rs := make([]io.Reader, len(chunks))
	for i, c := range chunks {
		rs[i] = bytes.NewReader(c)
	}
	return io.MultiReader(rs...)
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

// chunkWriter holds what is written in chunks of decodeChunk bytes.
type chunkWriter [][]byte

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(*w) == 0 || len((*w)[len(*w)-1]) == decodeChunk {
			*w = append(*w, make([]byte, 0, decodeChunk))
		}
		last := &(*w)[len(*w)-1]
		m := copy((*last)[len(*last):decodeChunk], p)
		*last = (*last)[:len(*last)+m]
		p = p[m:]
	}
	return n, nil
}
