package pflog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pcapFile is a pcap file as a test reads it back.
type pcapFile struct {
	order    binary.ByteOrder
	nano     bool
	snaplen  uint32
	linkType uint32
	records  []pcapRecord
}

type pcapRecord struct {
	sec, frac  uint32
	incl, orig uint32
	data       []byte
}

// readPcap parses a whole pcap file strictly: no trailing bytes allowed.
func readPcap(t *testing.T, path string) pcapFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: %d bytes", path, len(b))
	}
	var f pcapFile
	switch {
	case binary.LittleEndian.Uint32(b) == pcapMagicMicro:
		f.order = binary.LittleEndian
	case binary.BigEndian.Uint32(b) == pcapMagicMicro:
		f.order = binary.BigEndian
	case binary.LittleEndian.Uint32(b) == pcapMagicNano:
		f.order, f.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(b) == pcapMagicNano:
		f.order, f.nano = binary.BigEndian, true
	default:
		t.Fatalf("%s: bad magic % x", path, b[:4])
	}
	f.snaplen = f.order.Uint32(b[16:])
	f.linkType = f.order.Uint32(b[20:])
	for off := 24; off < len(b); {
		if len(b)-off < 16 {
			t.Fatalf("%s: torn record header at %d", path, off)
		}
		r := pcapRecord{
			sec: f.order.Uint32(b[off:]), frac: f.order.Uint32(b[off+4:]),
			incl: f.order.Uint32(b[off+8:]), orig: f.order.Uint32(b[off+12:]),
		}
		off += 16
		if len(b)-off < int(r.incl) {
			t.Fatalf("%s: torn record data at %d", path, off)
		}
		r.data = b[off : off+int(r.incl)]
		off += int(r.incl)
		f.records = append(f.records, r)
	}
	return f
}

// udp4 is a 33-byte IPv4/UDP packet 192.0.2.1:4000 -> 192.0.2.2:53 with a
// 5-byte payload (checksums are not checked by anything here).
var udp4 = []byte{
	0x45, 0x00, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	192, 0, 2, 1, 192, 0, 2, 2,
	0x0f, 0xa0, 0x00, 0x35, 0x00, 0x0d, 0x00, 0x00,
	'h', 'e', 'l', 'l', 'o',
}

func testRecord(rule uint32, ts time.Time) Record {
	return Record{
		Time:    ts,
		Header:  NewHeader(Meta{Rule: rule, Action: ActionBlock, Dir: DirIn}, AFInet, "eth0"),
		Packet:  udp4,
		OrigLen: len(udp4),
	}
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func TestWriterNewFileGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pflog")
	w, err := OpenWriter(path, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(testRecord(3, t0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		d4 c3 b2 a1 02 00 04 00 | magic (little-endian, microseconds), version 2.4
		00 00 00 00 00 00 00 00 | thiszone, sigfigs
		47 00 01 00 75 00 00 00 | snaplen 72+65535, link type 117 (PFLOG)
		c0 2e 32 66 40 e2 01 00 | 2024-05-01T12:00:00Z = 0x66322ec0, 123456 us
		69 00 00 00 69 00 00 00 | incl = orig = 72 + 33
	`)
	want = NewHeader(Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}, AFInet, "eth0").AppendTo(want)
	want = append(want, udp4...)
	if !bytes.Equal(got, want) {
		t.Fatalf("file =\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestWriterAppendKeepsFileValid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pflog")
	for i := range 3 {
		w, err := OpenWriter(path, WriterConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for j := range 2 {
			if err := w.Write(testRecord(uint32(2*i+j), t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f := readPcap(t, path)
	if f.linkType != LinkType || len(f.records) != 6 {
		t.Fatalf("link type %d, %d records; want %d, 6", f.linkType, len(f.records), LinkType)
	}
	for i, r := range f.records {
		h, n, err := ParseHeader(r.data)
		if err != nil || n != HeaderLen || h.RuleNr != uint32(i) || !bytes.Equal(r.data[n:], udp4) {
			t.Fatalf("record %d: %+v, %d, %v", i, h, n, err)
		}
	}
}

func TestWriterRefusesOtherFiles(t *testing.T) {
	ether := make([]byte, 24)
	binary.LittleEndian.PutUint32(ether, pcapMagicMicro)
	binary.LittleEndian.PutUint16(ether[4:], 2)
	binary.LittleEndian.PutUint16(ether[6:], 4)
	binary.LittleEndian.PutUint32(ether[16:], 65535)
	binary.LittleEndian.PutUint32(ether[20:], 1)
	v1 := bytes.Clone(ether)
	binary.LittleEndian.PutUint16(v1[4:], 1)
	badRecord := bytes.Clone(ether)
	binary.LittleEndian.PutUint32(badRecord[20:], LinkType)
	badRecord = append(badRecord, make([]byte, 16)...)
	binary.LittleEndian.PutUint32(badRecord[24+8:], 1<<30)
	badRecord = append(badRecord, make([]byte, 100)...)
	tests := []struct {
		name    string
		content []byte
		want    string
	}{
		{"ethernet pcap", ether, "link type 1 (EN10MB, Ethernet), want 117 (PFLOG)"},
		{"pcapng", []byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0x1c, 0x4d, 0x3c, 0x2b, 0x1a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "pcapng"},
		{"text", []byte("Nothing to see here, just a text file.\n"), "not a pcap file"},
		{"short", []byte{0xd4, 0xc3}, "too short for a pcap file header"},
		{"version 1", v1, "pcap version 1.4"},
		{"corrupt record", badRecord, "record at offset 24 claims 1073741824 captured bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := OpenWriter(path, WriterConfig{})
			if err == nil {
				w.Close()
				t.Fatal("OpenWriter succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file and %q", err, tt.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.content) {
				t.Fatal("refused file was modified")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, err := OpenWriter(t.TempDir(), WriterConfig{}); err == nil {
			t.Fatal("OpenWriter on a directory succeeded")
		}
	})
}

func TestWriterCutsTornRecord(t *testing.T) {
	for _, torn := range []int{5, 16 + 10} { // inside the record header; inside the data
		path := filepath.Join(t.TempDir(), "pflog")
		w, err := OpenWriter(path, WriterConfig{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(testRecord(1, t0))
		w.Write(testRecord(2, t0))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		good, _ := os.ReadFile(path)
		// A crash during the third record's write.
		var rec []byte
		w2 := &Writer{order: binary.LittleEndian, snaplen: DefaultSnaplen}
		rec = w2.appendRecord(rec, testRecord(3, t0))
		os.WriteFile(path, append(bytes.Clone(good), rec[:torn]...), 0o600)

		w, err = OpenWriter(path, WriterConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Recovered != int64(torn) {
			t.Errorf("Recovered = %d, want %d", w.Recovered, torn)
		}
		w.Write(testRecord(4, t0))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f := readPcap(t, path)
		if len(f.records) != 3 {
			t.Fatalf("%d records after recovery, want 3", len(f.records))
		}
		if h, _, _ := ParseHeader(f.records[2].data); h.RuleNr != 4 {
			t.Fatalf("last record is rule %d, want 4", h.RuleNr)
		}
	}
}

func TestWriterKeepsExistingFormat(t *testing.T) {
	// A big-endian, nanosecond file with a small snapshot length, as
	// another tool may have written it.
	hdr := make([]byte, 24)
	binary.BigEndian.PutUint32(hdr, pcapMagicNano)
	binary.BigEndian.PutUint16(hdr[4:], 2)
	binary.BigEndian.PutUint16(hdr[6:], 4)
	binary.BigEndian.PutUint32(hdr[16:], 100)
	binary.BigEndian.PutUint32(hdr[20:], LinkType)
	path := filepath.Join(t.TempDir(), "pflog")
	os.WriteFile(path, hdr, 0o600)
	w, err := OpenWriter(path, WriterConfig{Snaplen: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if w.Snaplen() != 100 {
		t.Errorf("Snaplen = %d, want the file's 100", w.Snaplen())
	}
	w.Write(testRecord(9, t0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f := readPcap(t, path)
	if len(f.records) != 1 {
		t.Fatalf("%d records", len(f.records))
	}
	r := f.records[0]
	if r.incl != 100 || r.orig != uint32(HeaderLen+len(udp4)) || r.frac != 123456789 || int64(r.sec) != t0.Unix() {
		t.Fatalf("record %+v: want incl 100, orig %d, ns 123456789", r, HeaderLen+len(udp4))
	}
}

func TestWriterSnaplenCutsAndOrigLen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pflog")
	w, err := OpenWriter(path, WriterConfig{Snaplen: HeaderLen + 20})
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecord(1, time.Time{}) // no time: written as 0
	rec.OrigLen = 1500                // the kernel copied only part of it
	w.Write(rec)
	w.Close()
	f := readPcap(t, path)
	r := f.records[0]
	if f.snaplen != HeaderLen+20 || r.incl != HeaderLen+20 || r.orig != HeaderLen+1500 || r.sec != 0 {
		t.Fatalf("snaplen %d, record %+v", f.snaplen, r)
	}
}

func TestWriterExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pflog")
	w, err := OpenWriter(path, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w2, err := OpenWriter(path, WriterConfig{}); err == nil {
		w2.Close()
		t.Fatal("second writer on the same file succeeded")
	} else if !strings.Contains(err.Error(), "another writer") {
		t.Fatalf("error %q", err)
	}
	w.Close()
	if err := w.Write(testRecord(1, t0)); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkWriterWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "pflog")
	w, err := OpenWriter(path, WriterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rec := testRecord(3, t0)
	b.SetBytes(int64(pcapRecordHeaderLen + HeaderLen + len(udp4)))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

func TestWriterWriteDoesNotAllocate(t *testing.T) {
	w, err := OpenWriter(filepath.Join(t.TempDir(), "pflog"), WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := testRecord(3, t0)
	w.Write(rec) // grow the buffer once
	w.Flush()
	if n := testing.AllocsPerRun(100, func() { w.Write(rec); w.buf = w.buf[:0] }); n != 0 {
		t.Fatalf("Write allocates %v times per record, want 0", n)
	}
}
