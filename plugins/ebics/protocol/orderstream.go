package protocol

import (
	"compress/zlib"
	"errors"
	"io"
)

// NewOrderDataReader decodes upload order data as it is read: base64
// (whitespace tolerated) -> E002 decryption -> zlib inflate, for order data
// too large to hold (a bank or a simulator spooling segments to disk). The
// caller bounds what it reads. Errors are *CryptoError (Op "base64",
// "decrypt" or "inflate").
func NewOrderDataReader(b64 io.Reader, key []byte) (io.ReadCloser, error) {
	dec, err := NewE002Reader(newBase64Reader(b64), key)
	if err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(dec)
	if err != nil {
		var ce *CryptoError
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, &CryptoError{Op: "inflate", Err: err}
	}
	return &inflating{zr}, nil
}

type inflating struct{ io.ReadCloser }

func (z *inflating) Read(p []byte) (int, error) {
	n, err := z.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var ce *CryptoError
		if !errors.As(err, &ce) {
			err = &CryptoError{Op: "inflate", Err: err}
		}
	}
	return n, err
}
