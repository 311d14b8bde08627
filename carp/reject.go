package carp

// Reject is why a received advertisement was dropped. It implements error
// without allocating, so the decode path stays allocation-free.
type Reject uint8

// Reject reasons, one counter each in Stats.Rejects. The names follow the
// BSD carpstats counters where one exists (carps_badttl, carps_badlen,
// carps_badsum, carps_badver, carps_badvhid, carps_badauth).
const (
	RejectTTL      Reject = iota // TTL or hop limit not 255
	RejectShort                  // fewer than 36 bytes
	RejectChecksum               // Internet checksum of the header wrong
	RejectVersion                // version nibble not 2
	RejectType                   // type nibble not 1
	RejectVHID                   // no group with this VHID on the interface
	RejectAuth                   // HMAC does not match
	RejectOwn                    // our own advertisement came back (loop)
	RejectState                  // valid, but the group is in INIT
	NumRejects                   // number of reasons; not a reason
)

var rejectNames = [NumRejects]string{
	RejectTTL:      "bad ttl",
	RejectShort:    "bad length",
	RejectChecksum: "bad checksum",
	RejectVersion:  "bad version",
	RejectType:     "bad type",
	RejectVHID:     "unknown vhid",
	RejectAuth:     "bad hmac",
	RejectOwn:      "own advertisement looped back",
	RejectState:    "ignored in INIT",
}

// String returns the short name of r.
func (r Reject) String() string {
	if r < NumRejects {
		return rejectNames[r]
	}
	return "reject?"
}

// Error makes Reject an error.
func (r Reject) Error() string { return "carp: " + r.String() }
