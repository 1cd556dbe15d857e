package client

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
	"runtime"
	"sync"
)

// The parallel deflate of an upload (pigz's method): the input is cut in
// blocks of pzBlock bytes, each compressed by its own flate.Writer primed
// with the previous block's last 32 KiB as dictionary (so matches reach
// across blocks as in a single stream) and ended with a sync flush (an
// empty stored block: the output ends on a byte boundary), the last one
// with the final block. The outputs, in order, after one zlib header and
// followed by the Adler-32 of the whole input,
// are ONE valid zlib stream (RFC 1950/1951) that any inflater reads. The
// writer goroutine, which puts the outputs in order, computes the Adler-32
// over the blocks' inputs in the same order.
const (
	pzBlock = 1 << 20
	pzDict  = 32 << 10
	// MaxDeflateWorkers caps the deflate workers: each block in flight
	// holds its input, its output and a compressor (about 3 MiB).
	MaxDeflateWorkers = 8
)

// DefaultDeflateWorkers is the number of deflate workers of an upload when
// the options leave it unset: GOMAXPROCS, at most MaxDeflateWorkers.
func DefaultDeflateWorkers() int { return min(runtime.GOMAXPROCS(0), MaxDeflateWorkers) }

// deflateWorkers is the client's number of deflate workers.
func (c *Client) deflateWorkers() int {
	if c.o.DeflateWorkers > 0 {
		return c.o.DeflateWorkers
	}
	return DefaultDeflateWorkers()
}

// pzJob is one block: compressed by a worker, written by the writer.
type pzJob struct {
	in    []byte
	dict  []byte
	last  bool
	out   *bytes.Buffer
	err   error
	ready chan struct{}
}

// parallelZlib compresses what is read into it (ReadFrom) into one zlib
// stream written to dst, with several workers. At most 2 x workers blocks
// are in flight, so memory does not grow with the input.
type parallelZlib struct {
	dst   io.Writer
	level int
	dict  []byte // the last pzDict bytes of the previous block
	work  chan *pzJob
	order chan *pzJob
	free  chan []byte
	outs  chan *bytes.Buffer
	wg    sync.WaitGroup
	wdone chan struct{}
	mu    sync.Mutex
	err   error // the first error of a worker or of dst
	adler hash.Hash32
	ended bool
}

// newParallelZlib writes the zlib header to dst and starts the workers and
// the writer; Close (always call it) ends the stream and stops them.
func newParallelZlib(dst io.Writer, level, workers int) (*parallelZlib, error) {
	if workers < 1 {
		workers = 1
	}
	if level != flate.DefaultCompression && (level < flate.BestSpeed || level > flate.BestCompression) {
		return nil, fmt.Errorf("parallel zlib: invalid level %d", level)
	}
	h, err := zlibHeader(level)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(h); err != nil {
		return nil, err
	}
	inflight := 2 * workers
	z := &parallelZlib{dst: dst, level: level, work: make(chan *pzJob, inflight), order: make(chan *pzJob, inflight),
		free: make(chan []byte, inflight+2), outs: make(chan *bytes.Buffer, inflight+2), wdone: make(chan struct{}), adler: adler32.New()}
	for range workers {
		z.wg.Add(1)
		go z.worker()
	}
	go z.writer()
	return z, nil
}

// zlibHeader is the two bytes compress/zlib writes for level (CMF, FLG),
// taken from compress/zlib itself: the stream starts as a single-stream
// upload does.
func zlibHeader(level int) ([]byte, error) {
	var b bytes.Buffer
	zw, err := zlib.NewWriterLevel(&b, level)
	if err != nil {
		return nil, err
	}
	if err := zw.Flush(); err != nil { // writes the header, then an empty sync block
		return nil, err
	}
	return b.Bytes()[:2], nil
}

func (z *parallelZlib) fail(err error) {
	z.mu.Lock()
	if z.err == nil {
		z.err = err
	}
	z.mu.Unlock()
}

func (z *parallelZlib) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

// switchWriter is the flate.Writer's destination, switched per block.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// worker compresses blocks with one flate.Writer, reset for each block and
// primed with the block's dictionary by compressing it into io.Discard
// (then a sync flush): flate.NewWriterDict would allocate a compressor per
// block (about 1 MB, fresh memory page-faulted in each time).
func (z *parallelZlib) worker() {
	defer z.wg.Done()
	sw := &switchWriter{io.Discard}
	fw, _ := flate.NewWriter(sw, z.level) // the level is checked in newParallelZlib
	for j := range z.work {
		sw.w = io.Discard
		fw.Reset(sw)
		var err error
		if len(j.dict) > 0 {
			if _, err = fw.Write(j.dict); err == nil {
				err = fw.Flush()
			}
		}
		sw.w = j.out
		if err == nil {
			_, err = fw.Write(j.in)
		}
		if err == nil {
			if j.last {
				err = fw.Close()
			} else {
				err = fw.Flush()
			}
		}
		j.err = err
		close(j.ready)
	}
}

// writer writes the blocks' outputs in order and hashes their inputs, in
// the same order, into the stream's Adler-32.
func (z *parallelZlib) writer() {
	defer close(z.wdone)
	for j := range z.order {
		<-j.ready
		if j.err != nil {
			z.fail(fmt.Errorf("deflate: %w", j.err))
		} else if z.failed() == nil {
			if _, err := z.dst.Write(j.out.Bytes()); err != nil {
				z.fail(err)
			}
		}
		z.adler.Write(j.in)
		j.out.Reset()
		select {
		case z.outs <- j.out:
		default:
		}
		if cap(j.in) == pzBlock {
			select {
			case z.free <- j.in[:pzBlock]:
			default:
			}
		}
	}
}

func (z *parallelZlib) buffer() []byte {
	select {
	case b := <-z.free:
		return b
	default:
		return make([]byte, pzBlock)
	}
}

// submit hands one block to the workers, in order; it blocks while
// 2 x workers blocks are in flight.
func (z *parallelZlib) submit(in []byte, last bool) {
	j := &pzJob{in: in, dict: z.dict, last: last, ready: make(chan struct{})}
	select {
	case j.out = <-z.outs:
	default:
		j.out = new(bytes.Buffer)
	}
	if len(in) >= pzDict {
		z.dict = bytes.Clone(in[len(in)-pzDict:])
	} else if len(in) > 0 {
		d := append(bytes.Clone(z.dict), in...)
		z.dict = d[max(0, len(d)-pzDict):]
	}
	z.order <- j
	z.work <- j
}

// ReadFrom reads r to its end in blocks and compresses them; it returns the
// number of bytes read.
func (z *parallelZlib) ReadFrom(r io.Reader) (int64, error) {
	if z.ended {
		return 0, errors.New("parallel zlib: closed")
	}
	var total int64
	for {
		if err := z.failed(); err != nil {
			return total, err
		}
		b := z.buffer()
		n, err := io.ReadFull(r, b)
		total += int64(n)
		if n > 0 {
			z.submit(b[:n], false)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close ends the stream (a final empty block and the Adler-32 trailer) and
// stops the goroutines; it returns the first error met. After an error of
// the caller's, Close still stops the goroutines (its result is then moot).
func (z *parallelZlib) Close() error {
	if z.ended {
		return z.failed()
	}
	z.ended = true
	z.submit(nil, true)
	close(z.order)
	close(z.work)
	<-z.wdone
	z.wg.Wait()
	if err := z.failed(); err != nil {
		return err
	}
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], z.adler.Sum32())
	_, err := z.dst.Write(t[:])
	return err
}
