package protocol

import (
	"compress/zlib"
	"io"
)

func zlibWriter(w io.Writer) (*zlib.Writer, error) {
	return zlib.NewWriterLevel(w, zlib.DefaultCompression)
}
