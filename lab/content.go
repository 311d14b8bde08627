package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The errors VerifyContent wraps, so a caller can tell bad bytes from a
// short body (errors.Is).
var (
	ErrContentDiffers   = errors.New("content differs")
	ErrContentTooLong   = errors.New("content too long")
	ErrContentTruncated = errors.New("content truncated")
)

// The /bytes/N and /stream bodies are a deterministic byte sequence: the
// content at offset o is byte o%8 (big-endian) of splitmix64(o/8). Every
// offset can be checked on its own, so truncation, reordering or a splice of
// two streams is detected, not just a wrong length.

// splitmix64 is the finaliser of the SplitMix64 generator (Steele, Lea and
// Flood, 2014), used here as a cheap, well-mixed function of the block number.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// FillContent fills b with the content starting at offset off.
func FillContent(b []byte, off uint64) {
	var blk [8]byte
	i := 0
	for i < len(b) {
		o := off + uint64(i)
		binary.BigEndian.PutUint64(blk[:], splitmix64(o/8))
		n := copy(b[i:], blk[o%8:])
		i += n
	}
}

// ContentReader returns a reader of n bytes of content from offset 0.
func ContentReader(n int64) io.Reader { return &contentReader{left: n} }

type contentReader struct {
	off  uint64
	left int64
}

func (r *contentReader) Read(b []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	FillContent(b, r.off)
	r.off += uint64(len(b))
	r.left -= int64(len(b))
	return len(b), nil
}

// VerifyContent reads r to EOF and checks it is exactly want bytes of
// content. The error names the first offset that differs; it wraps
// ErrContentDiffers, ErrContentTooLong, ErrContentTruncated or the read
// error.
func VerifyContent(r io.Reader, want int64) error {
	buf := make([]byte, 32<<10)
	exp := make([]byte, len(buf))
	var off int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			FillContent(exp[:n], uint64(off))
			for i := 0; i < n; i++ {
				if buf[i] != exp[i] {
					return fmt.Errorf("%w at offset %d: got %#02x, want %#02x", ErrContentDiffers, off+int64(i), buf[i], exp[i])
				}
			}
			off += int64(n)
			if off > want {
				return fmt.Errorf("%w: more than the %d bytes expected", ErrContentTooLong, want)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("content read failed after %d of %d bytes: %w", off, want, err)
		}
	}
	if off != want {
		return fmt.Errorf("%w: got %d of %d bytes", ErrContentTruncated, off, want)
	}
	return nil
}
