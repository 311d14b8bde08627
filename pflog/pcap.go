package pflog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// pcap file format facts (libpcap's savefile format, "pcap" not "pcapng").
const (
	pcapFileHeaderLen   = 24
	pcapRecordHeaderLen = 16
	pcapMagicMicro      = 0xa1b2c3d4
	pcapMagicNano       = 0xa1b23c4d
	pcapngMagic         = 0x0a0d0d0a
	// maxSnaplen is libpcap's MAXIMUM_SNAPLEN: readers reject records with
	// a larger captured length.
	maxSnaplen = 262144
)

// DefaultSnaplen is the snapshot length of files Writer creates when
// WriterConfig.Snaplen is 0: the pflog header plus a whole IP packet of the
// largest size NFLOG copies (0xffff bytes).
const DefaultSnaplen = HeaderLen + 0xffff

// Record is one logged packet, ready to write.
type Record struct {
	// Time is when the packet was logged.
	Time time.Time
	// Header is the pflog header written before the packet.
	Header Header
	// Packet is the IP packet from its network header on, possibly cut
	// short by the NFLOG copy range. The Writer copies it; the caller may
	// reuse it after Write returns.
	Packet []byte
	// OrigLen is the length of the whole IP packet; a value below
	// len(Packet) is taken as len(Packet).
	OrigLen int
}

// WriterConfig tunes a Writer. The zero value is ready to use.
type WriterConfig struct {
	// Snaplen is the most bytes of a record (header included) kept in a
	// file Writer creates; 0 means DefaultSnaplen. When appending, the
	// existing file's snapshot length wins. Values below HeaderLen are
	// raised to HeaderLen.
	Snaplen int
	// Perm is the mode of a file Writer creates; 0 means 0600 (packets are
	// private).
	Perm os.FileMode
}

// Writer appends pflog records to a pcap file. It is not safe for
// concurrent use; it owns the file from OpenWriter to Close (an advisory
// lock keeps a second Writer, in this process or another, out of it).
//
// Write buffers; Flush writes the buffer in one write. If a write fails
// part-way the Writer truncates the file back to its last complete record,
// so the file stays readable, and reports the error.
type Writer struct {
	f       *os.File
	path    string
	order   binary.ByteOrder
	nano    bool
	snaplen int
	size    int64 // bytes of complete records on disk
	buf     []byte
	// Recovered is the number of bytes of a torn last record OpenWriter cut
	// off an existing file (a crash mid-write leaves one); read-only.
	Recovered int64
}

// flushAt is the buffer size at which Write flushes by itself.
const flushAt = 64 << 10

// OpenWriter opens path for appending pflog records, creating it with a pcap
// file header (little-endian, microsecond timestamps, DLT_PFLOG) when it does
// not exist or is empty. An existing file must be a pcap file of link type
// DLT_PFLOG; Writer keeps its byte order, timestamp precision and snapshot
// length. Anything else is refused with an error naming the file and what is
// wrong with it, and the file is left untouched.
func OpenWriter(path string, cfg WriterConfig) (*Writer, error) {
	perm := cfg.Perm
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, fmt.Errorf("pflog: %w", err)
	}
	if err := lockFile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("pflog: %s: another writer holds the file: %w", path, err), f.Close())
	}
	w := &Writer{f: f, path: path}
	if err := w.init(cfg); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return w, nil
}

func (w *Writer) init(cfg WriterConfig) error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("pflog: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("pflog: %s: not a regular file", w.path)
	}
	if fi.Size() == 0 {
		return w.create(cfg)
	}
	if err := w.check(fi.Size()); err != nil {
		return err
	}
	if _, err := w.f.Seek(w.size, io.SeekStart); err != nil {
		return fmt.Errorf("pflog: %w", err)
	}
	return nil
}

func (w *Writer) create(cfg WriterConfig) error {
	snap := cfg.Snaplen
	if snap == 0 {
		snap = DefaultSnaplen
	}
	w.snaplen = min(max(snap, HeaderLen), maxSnaplen)
	w.order = binary.LittleEndian
	var h [pcapFileHeaderLen]byte
	w.order.PutUint32(h[0:], pcapMagicMicro)
	w.order.PutUint16(h[4:], 2) // version 2.4
	w.order.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0.
	w.order.PutUint32(h[16:], uint32(w.snaplen))
	w.order.PutUint32(h[20:], LinkType)
	if _, err := w.f.WriteAt(h[:], 0); err != nil {
		// Leave no torn header behind for the next open to misread.
		return errors.Join(fmt.Errorf("pflog: writing pcap header: %w", err), w.f.Truncate(0))
	}
	w.size = pcapFileHeaderLen
	_, err := w.f.Seek(w.size, io.SeekStart)
	return err
}

// check validates an existing file of the given size and sets w's format and
// size, cutting a torn last record.
func (w *Writer) check(size int64) error {
	var h [pcapFileHeaderLen]byte
	if size < pcapFileHeaderLen {
		return fmt.Errorf("pflog: %s: %d bytes is too short for a pcap file header (%d); move it away or delete it", w.path, size, pcapFileHeaderLen)
	}
	if _, err := w.f.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("pflog: %s: reading pcap header: %w", w.path, err)
	}
	switch {
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicMicro:
		w.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[:]) == pcapMagicMicro:
		w.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicNano:
		w.order, w.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[:]) == pcapMagicNano:
		w.order, w.nano = binary.BigEndian, true
	case binary.BigEndian.Uint32(h[:]) == pcapngMagic:
		return fmt.Errorf("pflog: %s: is a pcapng file; pflog appends only to classic pcap files", w.path)
	default:
		return fmt.Errorf("pflog: %s: not a pcap file (magic %#08x)", w.path, binary.BigEndian.Uint32(h[:]))
	}
	if major := w.order.Uint16(h[4:]); major != 2 {
		return fmt.Errorf("pflog: %s: pcap version %d.%d, want 2.x", w.path, major, w.order.Uint16(h[6:]))
	}
	// The upper bits of the link type field carry FCS information.
	if lt := w.order.Uint32(h[20:]) & 0xffff; lt != LinkType {
		return fmt.Errorf("pflog: %s: link type %d%s, want %d (PFLOG); refusing to append pflog records to it", w.path, lt, linkTypeName(lt), LinkType)
	}
	w.snaplen = int(w.order.Uint32(h[16:]))
	if w.snaplen <= 0 || w.snaplen > maxSnaplen {
		w.snaplen = maxSnaplen
	}
	if w.snaplen < HeaderLen {
		return fmt.Errorf("pflog: %s: snapshot length %d is shorter than the pflog header (%d)", w.path, w.snaplen, HeaderLen)
	}
	return w.scan(size)
}

// scan walks the records of the file to find where the last complete one
// ends; a torn record after it is cut off.
func (w *Writer) scan(size int64) error {
	r := bufio.NewReaderSize(io.NewSectionReader(w.f, pcapFileHeaderLen, size-pcapFileHeaderLen), 64<<10)
	off := int64(pcapFileHeaderLen)
	var rh [pcapRecordHeaderLen]byte
	for off != size {
		if size-off < pcapRecordHeaderLen {
			break // torn record header
		}
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return fmt.Errorf("pflog: %s: reading record at offset %d: %w", w.path, off, err)
		}
		incl := int64(w.order.Uint32(rh[8:]))
		if incl > maxSnaplen {
			return fmt.Errorf("pflog: %s: record at offset %d claims %d captured bytes (the most is %d): the file is corrupt; move it away", w.path, off, incl, maxSnaplen)
		}
		if size-off-pcapRecordHeaderLen < incl {
			break // torn record data
		}
		if _, err := r.Discard(int(incl)); err != nil {
			return fmt.Errorf("pflog: %s: reading record at offset %d: %w", w.path, off, err)
		}
		off += pcapRecordHeaderLen + incl
	}
	if off < size {
		if err := w.f.Truncate(off); err != nil {
			return fmt.Errorf("pflog: %s: cutting torn last record at offset %d: %w", w.path, off, err)
		}
		w.Recovered = size - off
	}
	w.size = off
	return nil
}

func linkTypeName(lt uint32) string {
	switch lt {
	case 1:
		return " (EN10MB, Ethernet)"
	case 101:
		return " (RAW)"
	case 113:
		return " (LINUX_SLL)"
	case 239:
		return " (NFLOG)"
	case 276:
		return " (LINUX_SLL2)"
	}
	return ""
}

// Path returns the file name the Writer was opened with.
func (w *Writer) Path() string { return w.path }

// Snaplen returns the file's snapshot length: records are cut to it.
func (w *Writer) Snaplen() int { return w.snaplen }

// Write buffers one record: a pcap record header, r.Header and r.Packet, cut
// to the snapshot length. It flushes when the buffer is large.
func (w *Writer) Write(r Record) error {
	if w.f == nil {
		return fmt.Errorf("pflog: %s: writer is closed", w.path)
	}
	w.buf = w.appendRecord(w.buf, r)
	if len(w.buf) >= flushAt {
		return w.Flush()
	}
	return nil
}

func (w *Writer) appendRecord(b []byte, r Record) []byte {
	orig := HeaderLen + max(r.OrigLen, len(r.Packet))
	incl := min(HeaderLen+len(r.Packet), w.snaplen)
	sec, frac := int64(0), int64(0)
	if ts := r.Time; !ts.IsZero() && ts.Unix() >= 0 {
		sec = ts.Unix()
		if w.nano {
			frac = int64(ts.Nanosecond())
		} else {
			frac = int64(ts.Nanosecond() / 1000)
		}
	}
	// Encode in place: a local array would escape through the
	// binary.ByteOrder interface and cost an allocation per record.
	n := len(b)
	b = append(b, make([]byte, pcapRecordHeaderLen)...)
	rh := b[n:]
	w.order.PutUint32(rh[0:], uint32(sec))
	w.order.PutUint32(rh[4:], uint32(frac))
	w.order.PutUint32(rh[8:], uint32(incl))
	w.order.PutUint32(rh[12:], uint32(min(orig, 0xffffffff)))
	b = r.Header.AppendTo(b)
	return append(b, r.Packet[:incl-HeaderLen]...)
}

// Flush writes buffered records. On a failed or short write it cuts the file
// back to the last complete record and drops the buffer (the records are
// lost, the file stays valid).
func (w *Writer) Flush() error {
	if w.f == nil {
		return fmt.Errorf("pflog: %s: writer is closed", w.path)
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	if err == nil && n == len(w.buf) {
		w.size += int64(n)
		w.buf = w.buf[:0]
		return nil
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	lost := len(w.buf)
	w.buf = w.buf[:0]
	if terr := w.f.Truncate(w.size); terr != nil {
		err = errors.Join(err, fmt.Errorf("cutting back to %d bytes: %w", w.size, terr))
	} else if _, serr := w.f.Seek(w.size, io.SeekStart); serr != nil {
		err = errors.Join(err, serr)
	}
	return fmt.Errorf("pflog: %s: writing %d bytes of records: %w", w.path, lost, err)
}

// Close flushes and closes the file. Close is idempotent.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}
