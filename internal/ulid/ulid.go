// Package ulid makes ULID-shaped ids, 26 Crockford base32 characters,
// time first: New for the rows acquit appends (events, payment timeline
// rows), increasing within one process, so each new row's key goes at the
// end of its primary-key index instead of at a random place; Random for
// payment references, whose random part must not follow from a neighbour's.
package ulid

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	idMu   sync.Mutex
	lastMS int64
	lastR  [10]byte
)

// New returns a 26-character ULID-style id: 48 bits of milliseconds then
// 80 random bits, Crockford base32, monotonic within one process: in a
// millisecond already used (or with a clock set back) the previous id's
// random part plus one.
func New(t time.Time) string {
	ms := t.UnixMilli()
	idMu.Lock()
	var r [10]byte
	if ms <= lastMS {
		ms = lastMS
		r = lastR
		for i := 9; i >= 0; i-- { // increment the random part
			r[i]++
			if r[i] != 0 {
				break
			}
		}
	} else {
		_, _ = rand.Read(r[:])
	}
	lastMS, lastR = ms, r
	idMu.Unlock()
	return encode(ms, r)
}

// Random returns a 26-character ULID-style id whose 80 random bits are
// fresh (not the previous id's plus one, as New's may be): it sorts by its
// millisecond, not within one.
func Random(t time.Time) string {
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read does not fail (Go 1.24)
	return encode(t.UnixMilli(), r)
}

// encode writes 48 bits of milliseconds then the 80 bits of r as 26
// Crockford base32 characters (the first holds 3 bits).
func encode(ms int64, r [10]byte) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16)
	copy(b[6:], r[:])
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
