package pfsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net/netip"
)

// Wire format, version 1 (all integers big-endian). One message per IP
// protocol 240 datagram:
//
//	 0  magic    uint16  0x5046 ("PF")
//	 2  version  uint8   1
//	 3  flags    uint8   bit 0: a 32-byte HMAC-SHA256 trailer follows the records
//	 4  length   uint16  whole message, trailer included
//	 6  count    uint16  number of records
//	 8  sender   uint32  the sending node's id
//	12  epoch    uint64  the sender's start time (unix ns): a restart starts a new epoch
//	20  seq      uint64  per-epoch message sequence, from 1
//	28  records, each: type uint8, reserved uint8, body length uint16, body
//	    trailer: HMAC-SHA256(key, bytes 0 .. length-33)
//
// Records (bodies):
//
//	RecState  (1): family uint8 (4|6), proto uint8, zone uint16, status uint32,
//	               mark uint32, timeout uint32, tcp state, wscale[2], flags[2],
//	               reserved[3], updated int64 (sender's unix ns),
//	               orig src, orig dst, reply src, reply dst (4 or 16 bytes
//	               each), orig sport, dport, reply sport, dport (uint16)
//	RecDelete (2): family, proto, zone, orig src, orig dst, sport, dport
//	RecSticky (3): op uint8 (1 set, 2 delete), family uint8, name length
//	               uint8, reserved, timeout uint32 (seconds), name, source
//	               address, backend address (4 or 16 bytes each)
//	RecBulkRequest (4): empty
//	RecBulkStatus  (5): status uint8 (1 start, 2 end), reserved[3], states uint32
//	RecStateAck    (6): the body of a RecDelete: the key of a state applied
//	                    (added to version 1 for `defer`, see below)
//	RecLabels      (7): the body of a RecDelete, then labels [16]: the
//	                    connection labels of the state just before it in the
//	                    same message (added to version 1, see below)
//
// Unknown record types are skipped (their length is known), so version 1
// readers tolerate additions; anything that changes the meaning of known
// records must bump the version.
//
// Additions to version 1 (each ignored by readers that predate it):
//
//   - For `defer` (pfsync(4)'s PFSTATE_ACK and INS_ACK): a record's
//     reserved byte carries flags, of which RecFlagAck on a RecState asks
//     the receiver to answer with a RecStateAck once the state is in its
//     table. A reader that predates it never acks, so the sender's held
//     packet goes after the defer timeout, as with a lost ack.
//   - RecLabels follows a RecState whose entry has connection labels, in the
//     same message. A reader that predates it keeps the state without them,
//     as before.
const (
	Magic      = 0x5046
	Version    = 1
	HeaderLen  = 28
	MACLen     = sha256.Size
	recHdrLen  = 4
	flagMAC    = 1
	stateFixed = 32
)

// RecordType is a record's type.
type RecordType uint8

// Record types.
const (
	RecState       RecordType = 1
	RecDelete      RecordType = 2
	RecSticky      RecordType = 3
	RecBulkRequest RecordType = 4
	RecBulkStatus  RecordType = 5
	RecStateAck    RecordType = 6
	RecLabels      RecordType = 7
)

// Record flags (the record header's second byte).
const (
	// RecFlagAck on a RecState: answer with a RecStateAck (defer).
	RecFlagAck = 1
)

// Bulk status values.
const (
	BulkStart = 1
	BulkEnd   = 2
)

// Header is a message header.
type Header struct {
	Flags  uint8
	Length uint16
	Count  uint16
	Sender uint32
	Epoch  uint64
	Seq    uint64
}

// AppendTo appends the header's 28 bytes to b.
func (h *Header) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, Magic)
	b = append(b, Version, h.Flags)
	b = binary.BigEndian.AppendUint16(b, h.Length)
	b = binary.BigEndian.AppendUint16(b, h.Count)
	b = binary.BigEndian.AppendUint32(b, h.Sender)
	b = binary.BigEndian.AppendUint64(b, h.Epoch)
	return binary.BigEndian.AppendUint64(b, h.Seq)
}

// Drop is why a received message was dropped.
type Drop uint8

// Drop reasons.
const (
	DropShort     Drop = iota // shorter than a header
	DropMagic                 // not a pfcarp pfsync message
	DropVersion               // unsupported version
	DropLength                // length field disagrees with the datagram
	DropAuth                  // missing or wrong HMAC
	DropReplay                // old epoch, or sequence seen or too old
	DropMalformed             // a record's length or contents are invalid
	DropSelf                  // our own message looped back
	NumDrops
)

var dropNames = [NumDrops]string{"short", "bad-magic", "bad-version", "bad-length", "auth", "replay", "malformed", "self"}

func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return "unknown"
}

// DropError is returned by decoding functions.
type DropError struct {
	Reason Drop
	Msg    string
}

func (e *DropError) Error() string { return "pfsync: " + e.Reason.String() + ": " + e.Msg }

func dropErr(r Drop, msg string) error { return &DropError{r, msg} }

// Auth signs and verifies messages with HMAC-SHA256 under a shared key; a
// nil or empty key means messages are neither signed nor accepted signed.
// Not safe for concurrent use (it reuses one hash).
type Auth struct {
	mac hash.Hash
	sum [MACLen]byte
}

// NewAuth returns an Auth for key (empty: unauthenticated).
func NewAuth(key []byte) *Auth {
	if len(key) == 0 {
		return &Auth{}
	}
	return &Auth{mac: hmac.New(sha256.New, key)}
}

// Enabled reports whether a key is set.
func (a *Auth) Enabled() bool { return a.mac != nil }

// Seal fills in the header's length, count and flags in msg (built by a
// Builder) and appends the MAC when a key is set.
func (a *Auth) Seal(msg []byte, count int) []byte {
	n := len(msg)
	if a.mac != nil {
		n += MACLen
		msg[3] |= flagMAC
	}
	binary.BigEndian.PutUint16(msg[4:], uint16(n))
	binary.BigEndian.PutUint16(msg[6:], uint16(count))
	if a.mac != nil {
		a.mac.Reset()
		a.mac.Write(msg)
		msg = a.mac.Sum(msg)
	}
	return msg
}

// Open checks b's header, length and MAC and returns the header and the
// records' bytes. It does not allocate.
func (a *Auth) Open(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, nil, dropErr(DropShort, "message shorter than its header")
	}
	if binary.BigEndian.Uint16(b) != Magic {
		return h, nil, dropErr(DropMagic, "bad magic")
	}
	if b[2] != Version {
		return h, nil, dropErr(DropVersion, "unsupported version")
	}
	h.Flags = b[3]
	h.Length = binary.BigEndian.Uint16(b[4:])
	h.Count = binary.BigEndian.Uint16(b[6:])
	h.Sender = binary.BigEndian.Uint32(b[8:])
	h.Epoch = binary.BigEndian.Uint64(b[12:])
	h.Seq = binary.BigEndian.Uint64(b[20:])
	if int(h.Length) != len(b) {
		return h, nil, dropErr(DropLength, "length field disagrees with the datagram")
	}
	end := len(b)
	if h.Flags&flagMAC != 0 {
		if len(b) < HeaderLen+MACLen {
			return h, nil, dropErr(DropLength, "too short for its MAC")
		}
		end -= MACLen
	}
	switch {
	case a.mac == nil && h.Flags&flagMAC != 0:
		return h, nil, dropErr(DropAuth, "signed message but no pfsync_key is set")
	case a.mac != nil && h.Flags&flagMAC == 0:
		return h, nil, dropErr(DropAuth, "unsigned message but pfsync_key is set")
	case a.mac != nil:
		a.mac.Reset()
		a.mac.Write(b[:end])
		if !hmac.Equal(a.mac.Sum(a.sum[:0]), b[end:]) {
			return h, nil, dropErr(DropAuth, "HMAC mismatch")
		}
	}
	if h.Seq == 0 {
		return h, nil, dropErr(DropMalformed, "sequence 0")
	}
	return h, b[HeaderLen:end], nil
}

// Records iterates over a message's records. The zero value is empty.
type Records struct {
	b     []byte
	left  int
	err   error
	flags uint8
}

// Flags returns the flags of the record Next returned last.
func (r *Records) Flags() uint8 { return r.flags }

// NewRecords iterates over body, which must hold count records.
func NewRecords(body []byte, count uint16) Records {
	return Records{b: body, left: int(count)}
}

// Next returns the next record's type and body; ok is false at the end
// or on an error (see Err).
func (r *Records) Next() (typ RecordType, body []byte, ok bool) {
	if r.err != nil || r.left == 0 {
		if r.err == nil && len(r.b) != 0 {
			r.err = dropErr(DropMalformed, "bytes after the last record")
		}
		return 0, nil, false
	}
	if len(r.b) < recHdrLen {
		r.err = dropErr(DropMalformed, "truncated record header")
		return 0, nil, false
	}
	n := int(binary.BigEndian.Uint16(r.b[2:]))
	if len(r.b) < recHdrLen+n {
		r.err = dropErr(DropMalformed, "record longer than the message")
		return 0, nil, false
	}
	typ, body = RecordType(r.b[0]), r.b[recHdrLen:recHdrLen+n]
	r.flags = r.b[1]
	r.b = r.b[recHdrLen+n:]
	r.left--
	return typ, body, true
}

// Err reports a framing error met by Next.
func (r *Records) Err() error { return r.err }

func appendRec(b []byte, t RecordType, bodyLen int) []byte {
	b = append(b, byte(t), 0)
	return binary.BigEndian.AppendUint16(b, uint16(bodyLen))
}

func addrLen(fam byte) int {
	if fam == 4 {
		return 4
	}
	return 16
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

func readAddr(b []byte, fam byte) netip.Addr {
	if fam == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16]))
}

// StateLen is the encoded record size (header included) of a state.
func StateLen(s *State) int { return recHdrLen + stateFixed + 4*addrLen(byte(s.Family())) + 8 }

// AppendState appends a RecState record for s, stamped with updated (unix
// ns). s must have a valid original tuple; an invalid reply tuple is sent
// as the inverted original.
func AppendState(b []byte, s *State, updated int64) []byte {
	return AppendStateFlags(b, s, updated, 0)
}

// AppendStateFlags is AppendState with record flags (RecFlagAck).
func AppendStateFlags(b []byte, s *State, updated int64, flags uint8) []byte {
	fam := byte(s.Family())
	al := addrLen(fam)
	b = appendRec(b, RecState, stateFixed+4*al+8)
	b[len(b)-3] = flags
	b = append(b, fam, s.Proto)
	b = binary.BigEndian.AppendUint16(b, s.Zone)
	b = binary.BigEndian.AppendUint32(b, s.Status)
	b = binary.BigEndian.AppendUint32(b, s.Mark)
	b = binary.BigEndian.AppendUint32(b, s.Timeout)
	b = append(b, s.TCP.State, s.TCP.WScale[0], s.TCP.WScale[1], s.TCP.Flags[0], s.TCP.Flags[1], 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(updated))
	r := s.Reply
	if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != s.Orig.Src.Is4() || r.Dst.Is4() != s.Orig.Src.Is4() {
		r = s.Orig.Invert()
	}
	for _, a := range [4]netip.Addr{s.Orig.Src, s.Orig.Dst, r.Src, r.Dst} {
		b = appendAddr(b, a)
	}
	for _, p := range [4]uint16{s.Orig.SrcPort, s.Orig.DstPort, r.SrcPort, r.DstPort} {
		b = binary.BigEndian.AppendUint16(b, p)
	}
	return b
}

// DecodeState decodes a RecState body into s (overwriting it) and returns
// the sender's update time. It does not allocate.
func DecodeState(body []byte, s *State) (updated int64, err error) {
	if len(body) < stateFixed {
		return 0, dropErr(DropMalformed, "short state record")
	}
	fam := body[0]
	if fam != 4 && fam != 6 {
		return 0, dropErr(DropMalformed, "bad address family")
	}
	al := addrLen(fam)
	if len(body) != stateFixed+4*al+8 {
		return 0, dropErr(DropMalformed, "state record length")
	}
	*s = State{
		Proto:   body[1],
		Zone:    binary.BigEndian.Uint16(body[2:]),
		Status:  binary.BigEndian.Uint32(body[4:]),
		Mark:    binary.BigEndian.Uint32(body[8:]),
		Timeout: binary.BigEndian.Uint32(body[12:]),
		TCP:     TCPInfo{State: body[16], WScale: [2]uint8{body[17], body[18]}, Flags: [2]uint8{body[19], body[20]}},
	}
	if s.TCP.State > TCPSynSent2 {
		return 0, dropErr(DropMalformed, "bad TCP state")
	}
	updated = int64(binary.BigEndian.Uint64(body[24:]))
	p := body[stateFixed:]
	s.Orig.Src, s.Orig.Dst = readAddr(p, fam), readAddr(p[al:], fam)
	s.Reply.Src, s.Reply.Dst = readAddr(p[2*al:], fam), readAddr(p[3*al:], fam)
	p = p[4*al:]
	s.Orig.SrcPort, s.Orig.DstPort = binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
	s.Reply.SrcPort, s.Reply.DstPort = binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:])
	return updated, nil
}

// DeleteLen is the encoded size of a delete record for s.
func DeleteLen(s *State) int { return recHdrLen + 4 + 2*addrLen(byte(s.Family())) + 4 }

// AppendDelete appends a RecDelete record for s's key.
func AppendDelete(b []byte, s *State) []byte {
	fam := byte(s.Family())
	b = appendRec(b, RecDelete, 4+2*addrLen(fam)+4)
	b = append(b, fam, s.Proto)
	b = binary.BigEndian.AppendUint16(b, s.Zone)
	b = appendAddr(b, s.Orig.Src)
	b = appendAddr(b, s.Orig.Dst)
	b = binary.BigEndian.AppendUint16(b, s.Orig.SrcPort)
	return binary.BigEndian.AppendUint16(b, s.Orig.DstPort)
}

// LabelsLen is the encoded size of a labels record for s.
func LabelsLen(s *State) int { return DeleteLen(s) + len(s.Labels) }

// AppendLabels appends a RecLabels record: s's key and labels.
func AppendLabels(b []byte, s *State) []byte {
	n := len(b)
	b = AppendDelete(b, s)
	b[n] = byte(RecLabels)
	binary.BigEndian.PutUint16(b[n+2:], uint16(LabelsLen(s)-recHdrLen))
	return append(b, s.Labels[:]...)
}

// DecodeLabels decodes a RecLabels body into s's key fields and labels.
func DecodeLabels(body []byte, s *State) error {
	if len(body) < len(s.Labels) {
		return dropErr(DropMalformed, "short labels record")
	}
	k := len(body) - len(s.Labels)
	if err := DecodeDelete(body[:k], s); err != nil {
		return err
	}
	copy(s.Labels[:], body[k:])
	return nil
}

// StateAckLen is the encoded size of a state ack record for s.
func StateAckLen(s *State) int { return DeleteLen(s) }

// AppendStateAck appends a RecStateAck record for s's key.
func AppendStateAck(b []byte, s *State) []byte {
	n := len(b)
	b = AppendDelete(b, s)
	b[n] = byte(RecStateAck)
	return b
}

// DecodeStateAck decodes a RecStateAck body into s's key fields.
func DecodeStateAck(body []byte, s *State) error { return DecodeDelete(body, s) }

// DecodeDelete decodes a RecDelete body into s's key fields.
func DecodeDelete(body []byte, s *State) error {
	if len(body) < 4 || (body[0] != 4 && body[0] != 6) {
		return dropErr(DropMalformed, "bad delete record")
	}
	fam := body[0]
	al := addrLen(fam)
	if len(body) != 4+2*al+4 {
		return dropErr(DropMalformed, "delete record length")
	}
	*s = State{Proto: body[1], Zone: binary.BigEndian.Uint16(body[2:])}
	s.Orig.Src, s.Orig.Dst = readAddr(body[4:], fam), readAddr(body[4+al:], fam)
	s.Orig.SrcPort = binary.BigEndian.Uint16(body[4+2*al:])
	s.Orig.DstPort = binary.BigEndian.Uint16(body[6+2*al:])
	return nil
}

// Sticky is one sticky-address binding: traffic from Source goes to
// Backend, in the dynamic map Map, for Timeout more seconds.
type Sticky struct {
	Map     string
	Source  netip.Addr
	Backend netip.Addr
	Timeout uint32
	Delete  bool
}

// MaxMapName bounds a sticky map's name on the wire.
const MaxMapName = 64

// StickyLen is the encoded size of a sticky record.
func StickyLen(k *Sticky) int {
	al := 16
	if k.Source.Is4() {
		al = 4
	}
	return recHdrLen + 8 + len(k.Map) + 2*al
}

// AppendSticky appends a RecSticky record. Source and Backend must be of
// one family and Map at most MaxMapName bytes.
func AppendSticky(b []byte, k *Sticky) []byte {
	fam, al := byte(6), 16
	if k.Source.Is4() {
		fam, al = 4, 4
	}
	op := byte(1)
	if k.Delete {
		op = 2
	}
	b = appendRec(b, RecSticky, 8+len(k.Map)+2*al)
	b = append(b, op, fam, byte(len(k.Map)), 0)
	b = binary.BigEndian.AppendUint32(b, k.Timeout)
	b = append(b, k.Map...)
	b = appendAddr(b, k.Source)
	return appendAddr(b, k.Backend)
}

func validateSticky(body []byte) error {
	if len(body) < 8 || (body[0] != 1 && body[0] != 2) || (body[1] != 4 && body[1] != 6) {
		return dropErr(DropMalformed, "bad sticky record")
	}
	al := addrLen(body[1])
	nl := int(body[2])
	if nl == 0 || nl > MaxMapName || len(body) != 8+nl+2*al {
		return dropErr(DropMalformed, "sticky record length")
	}
	return nil
}

// DecodeSticky decodes a RecSticky body. The map name is the one
// allocation (a string).
func DecodeSticky(body []byte, k *Sticky) error {
	if err := validateSticky(body); err != nil {
		return err
	}
	al := addrLen(body[1])
	nl := int(body[2])
	k.Delete = body[0] == 2
	k.Timeout = binary.BigEndian.Uint32(body[4:])
	k.Map = string(body[8 : 8+nl])
	k.Source = readAddr(body[8+nl:], body[1])
	k.Backend = readAddr(body[8+nl+al:], body[1])
	return nil
}

// AppendBulkRequest appends a RecBulkRequest record.
func AppendBulkRequest(b []byte) []byte { return appendRec(b, RecBulkRequest, 0) }

// AppendBulkStatus appends a RecBulkStatus record.
func AppendBulkStatus(b []byte, status uint8, states uint32) []byte {
	b = appendRec(b, RecBulkStatus, 8)
	b = append(b, status, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, states)
}

// DecodeBulkStatus decodes a RecBulkStatus body.
func DecodeBulkStatus(body []byte) (status uint8, states uint32, err error) {
	if len(body) != 8 || (body[0] != BulkStart && body[0] != BulkEnd) {
		return 0, 0, dropErr(DropMalformed, "bad bulk status record")
	}
	return body[0], binary.BigEndian.Uint32(body[4:]), nil
}

// ErrTooBig reports a record that cannot fit a message.
var ErrTooBig = errors.New("pfsync: record larger than a message")

// replayWindow is the anti-replay state for one sender: the newest epoch
// and, within it, the highest sequence and a bitmap of the 64 before it.
type replayWindow struct {
	epoch uint64
	top   uint64
	seen  uint64 // bit i: top-i was seen
}

// check reports whether (epoch, seq) is fresh and, if so, records it.
func (w *replayWindow) check(epoch, seq uint64) bool {
	switch {
	case epoch < w.epoch:
		return false
	case epoch > w.epoch:
		*w = replayWindow{epoch: epoch, top: seq, seen: 1}
		return true
	}
	if seq > w.top {
		d := seq - w.top
		if d >= 64 {
			w.seen = 1
		} else {
			w.seen = w.seen<<d | 1
		}
		w.top = seq
		return true
	}
	d := w.top - seq
	if d >= 64 || w.seen&(1<<d) != 0 {
		return false
	}
	w.seen |= 1 << d
	return true
}
