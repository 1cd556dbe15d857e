package acks

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// IsZip reports whether data starts like a ZIP archive.
func IsZip(data []byte) bool {
	return len(data) >= 4 && bytes.Equal(data[:4], []byte("PK\x03\x04")) ||
		len(data) >= 4 && bytes.Equal(data[:4], []byte("PK\x05\x06"))
}

// EachDocument calls fn for every document of a download: data itself, or,
// when data is a ZIP container, each entry whose name ends in .xml (or has
// no extension). Other entries (directories, .txt, .pdf...) are returned in
// skipped, never silently dropped. Entry names are only labels: nothing is
// written to disk. Encrypted entries, unsupported compression, nested
// archives and more than Limits.MaxZipEntries entries are refused with
// ErrContainer / ErrTooMany; the decompressed total is capped by
// Limits.MaxBytes (ErrTooLarge). fn's error stops the walk and is returned.
func EachDocument(data []byte, lim Limits, fn func(entry string, r io.Reader) error) (skipped []string, err error) {
	return eachDocument(data, lim, false, fn)
}

// EachDocumentAt is EachDocument over a document read through ra (size
// bytes), e.g. a file: a bare document is streamed, a ZIP container read
// in place, so the download is never held in memory.
func EachDocumentAt(ra io.ReaderAt, size int64, lim Limits, fn func(entry string, r io.Reader) error) (skipped []string, err error) {
	return eachDocumentAt(ra, size, lim, false, fn)
}

// eachDocument is EachDocument; anyExt hands every non-archive entry to fn.
func eachDocument(data []byte, lim Limits, anyExt bool, fn func(entry string, r io.Reader) error) (skipped []string, err error) {
	return eachDocumentAt(bytes.NewReader(data), int64(len(data)), lim, anyExt, fn)
}

// isZipAt is IsZip on the first bytes read through ra.
func isZipAt(ra io.ReaderAt, size int64) bool {
	var head [4]byte
	n, _ := ra.ReadAt(head[:min(size, 4)], 0)
	return IsZip(head[:n])
}

func eachDocumentAt(ra io.ReaderAt, size int64, lim Limits, anyExt bool, fn func(entry string, r io.Reader) error) (skipped []string, err error) {
	lim = lim.withDefaults()
	if !isZipAt(ra, size) {
		if size > lim.MaxBytes {
			return nil, &ParseError{Kind: ErrTooLarge, Format: "psr"}
		}
		return nil, fn("", io.NewSectionReader(ra, 0, size))
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return nil, &ParseError{Kind: ErrContainer, Format: "zip", Err: err}
	}
	if len(zr.File) > lim.MaxZipEntries {
		return nil, &ParseError{Kind: ErrTooMany, Format: "zip", Detail: fmt.Sprintf("%d entries", len(zr.File))}
	}
	budget := lim.MaxBytes
	for _, f := range zr.File {
		name := f.Name
		if f.FileInfo().IsDir() {
			continue
		}
		if f.Flags&1 != 0 {
			return skipped, &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(name), Detail: "encrypted entry"}
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return skipped, &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(name), Detail: fmt.Sprintf("compression method %d", f.Method)}
		}
		ext := strings.ToLower(path.Ext(name))
		switch ext {
		case ".zip", ".gz", ".jar", ".7z":
			return skipped, &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(name), Detail: "nested archive"}
		case ".xml", "":
		default:
			if anyExt {
				break
			}
			skipped = append(skipped, name)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return skipped, &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(name), Err: err}
		}
		cr := &capReader{r: rc, left: budget}
		err = fn(name, cr)
		rc.Close()
		budget = cr.left
		if cr.over {
			return skipped, &ParseError{Kind: ErrTooLarge, Format: "zip", Entry: clip(name), Detail: "decompressed size over the limit"}
		}
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) && pe.Entry == "" {
				pe.Entry = clip(name)
			}
			if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) {
				return skipped, &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(name), Err: err}
			}
			return skipped, err
		}
	}
	return skipped, nil
}

// capReader fails once more than left bytes have been read.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

var errCapped = errors.New("decompressed size over the limit")

// Read implements io.Reader.
func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Allow the underlying reader to report a clean EOF.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.over = true
			return 0, errCapped
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// PSRDocResult is the outcome for one document of a PSR download.
type PSRDocResult struct {
	Entry   string // ZIP entry name, "" for a bare document
	Summary *PSRSummary
}

// ParsePSRDownload parses a PSR download: a bare pain.002 or a ZIP
// container of several. handler returns the callbacks for each document
// (it may return a zero PSRHandler). The first failing document stops the
// walk: the error says which entry; results holds the documents parsed
// before it.
func ParsePSRDownload(data []byte, lim Limits, handler func(entry string) PSRHandler) (results []PSRDocResult, skipped []string, err error) {
	skipped, err = EachDocument(data, lim, func(entry string, r io.Reader) error {
		var h PSRHandler
		if handler != nil {
			h = handler(entry)
		}
		sum, err := ParsePSR(r, lim, h)
		if err != nil {
			return err
		}
		results = append(results, PSRDocResult{Entry: entry, Summary: sum})
		return nil
	})
	return results, skipped, err
}
