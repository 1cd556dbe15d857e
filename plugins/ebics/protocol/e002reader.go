package protocol

import (
	"bufio"
	"compress/zlib"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// e002Reader decrypts an E002 stream, holding back the last block until
// EOF to remove the padding.
type e002Reader struct {
	r    io.Reader
	cbc  cipher.BlockMode
	in   []byte // ciphertext read, not yet decrypted
	out  []byte // plaintext ready
	held []byte // last decrypted block (may carry padding)
	eof  bool
	err  error
}

// NewE002Reader returns a reader decrypting E002 ciphertext from r with the
// transaction key. Errors (length not a multiple of 16, bad padding) are
// *CryptoError.
func NewE002Reader(r io.Reader, key []byte) (io.Reader, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, &CryptoError{Op: "decrypt", Err: err}
	}
	return &e002Reader{r: r, cbc: cipher.NewCBCDecrypter(b, make([]byte, 16)), in: make([]byte, 0, 32<<10)}, nil
}

func (d *e002Reader) fill() {
	buf := d.in[len(d.in):cap(d.in)]
	n, err := d.r.Read(buf)
	d.in = d.in[:len(d.in)+n]
	if errors.Is(err, io.EOF) {
		d.eof = true
	} else if err != nil {
		d.err = err
		return
	}
	whole := len(d.in) &^ 15
	if whole > 0 {
		blk := make([]byte, whole)
		d.cbc.CryptBlocks(blk, d.in[:whole])
		copy(d.in, d.in[whole:])
		d.in = d.in[:len(d.in)-whole]
		all := append(d.held, blk...)
		d.out = append(d.out, all[:len(all)-16]...)
		d.held = append([]byte(nil), all[len(all)-16:]...)
	}
	if d.eof {
		switch {
		case len(d.in) != 0:
			d.err = &CryptoError{Op: "decrypt", Err: fmt.Errorf("ciphertext length is not a multiple of 16")}
		case len(d.held) == 0:
			d.err = &CryptoError{Op: "decrypt", Err: fmt.Errorf("empty ciphertext")}
		default:
			pad := int(d.held[15])
			if pad < 1 || pad > 16 {
				d.err = &CryptoError{Op: "decrypt", Err: ErrBadPadding}
				return
			}
			d.out = append(d.out, d.held[:16-pad]...)
			d.held = nil
			d.err = io.EOF
		}
	}
}

func (d *e002Reader) Read(p []byte) (int, error) {
	for len(d.out) == 0 && d.err == nil {
		d.fill()
	}
	if len(d.out) > 0 {
		n := copy(p, d.out)
		d.out = d.out[n:]
		if len(d.out) == 0 {
			d.out = d.out[:0:0]
		}
		return n, nil
	}
	return 0, d.err
}

// DecodeOrderData streams base64 segments -> E002 -> inflate, holding
// neither the joined text nor the ciphertext; at most max bytes of output.
func DecodeOrderData(segments []string, key []byte, max int64) ([]byte, error) {
	rs := make([]io.Reader, 0, len(segments))
	for _, s := range segments {
		rs = append(rs, stringsReader(s))
	}
	b64 := newBase64Reader(io.MultiReader(rs...))
	dec, err := NewE002Reader(b64, key)
	if err != nil {
		return nil, err
	}
	return inflateReader(dec, max)
}

// OrderDataDecoder streams order data as it arrives: base64 text (of any
// number of segments, read from r in order) -> E002 -> zlib inflate. Only a
// buffer of each stage is held, never the document.
type OrderDataDecoder struct {
	dec io.Reader // E002 plaintext (the compressed stream)
	zr  io.ReadCloser
	max int64
	n   int64
	err error
}

// NewOrderDataDecoder returns a reader of the decompressed order data read
// through r with the transaction key. More than max bytes of output fail
// with ErrInflateLimit (max <= 0: no limit). Once the compressed stream
// ends, Read drains the rest of the input (so every segment is fetched and
// the padding checked) and fails if anything follows the stream. Errors
// are *CryptoError.
func NewOrderDataDecoder(r io.Reader, key []byte, max int64) (*OrderDataDecoder, error) {
	dec, err := NewE002Reader(newBase64Reader(r), key)
	if err != nil {
		return nil, err
	}
	// A ByteReader, so that inflate reads no further than its stream's end
	// and what follows it can be seen.
	return &OrderDataDecoder{dec: bufio.NewReaderSize(dec, 64<<10), max: max}, nil
}

// Read implements io.Reader.
func (o *OrderDataDecoder) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.zr == nil {
		zr, err := zlib.NewReader(o.dec)
		if err != nil {
			o.err = asCrypto("inflate", err)
			return 0, o.err
		}
		o.zr = zr
	}
	n, err := o.zr.Read(p)
	o.n += int64(n)
	if o.max > 0 && o.n > o.max {
		o.err = &CryptoError{Op: "inflate", Err: ErrInflateLimit}
		return 0, o.err
	}
	if errors.Is(err, io.EOF) {
		// The compressed stream ended: what follows must be nothing but
		// the E002 padding, checked by reading to the end.
		var one [1]byte
		m, derr := io.ReadFull(o.dec, one[:])
		switch {
		case m > 0:
			o.err = &CryptoError{Op: "inflate", Err: fmt.Errorf("data after the end of the compressed stream")}
		case errors.Is(derr, io.EOF):
			o.err = io.EOF
		default:
			o.err = asCrypto("decrypt", derr)
		}
		if o.err != io.EOF {
			return n, nil
		}
		return n, io.EOF
	}
	if err != nil {
		o.err = asCrypto("inflate", err)
		return n, nil
	}
	return n, nil
}

// asCrypto keeps a *CryptoError as it is and wraps anything else.
func asCrypto(op string, err error) error {
	var ce *CryptoError
	if errors.As(err, &ce) {
		return ce
	}
	return &CryptoError{Op: op, Err: err}
}
