package carp

import (
	"net/netip"
	"time"
)

// State is the state of one VHID, as in both BSD kernels.
//
//	              parent up (setrun)
//	+--------+ ----------------------> +--------+
//	|  INIT  |                          | BACKUP | <------------------+
//	+--------+ <---------------------- +--------+                    |
//	  ^   ^     parent down, shutdown     |                          |
//	  |   |                               | master-down timer,       | better or equal
//	  |   |                               | preempting a slower      | advertisement
//	  |   |                               | or demoted master,       | received; or
//	  |   |                               | master bowing out        | BecomeMaster
//	  |   |                               v                          | failed
//	  |   |    parent down             +--------+                    |
//	  |   +--------------------------- | MASTER | -------------------+
//	  +------------------------------- +--------+
//	   shutdown (bows out: advbase 255 advskew 255)
//
// Every change goes through Group.changeState; each state has one step
// function returning (next state, reason).
type State uint8

// States.
const (
	Init State = iota
	Backup
	Master
)

// String returns the name ifconfig prints: INIT, BACKUP or MASTER.
func (s State) String() string {
	switch s {
	case Init:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	}
	return "STATE?"
}

// Transition describes one state change, passed to Actions and logged.
type Transition struct {
	VHID     uint8
	Parent   string
	From, To State
	Reason   string
	At       time.Time
}

// Actions is what a Node asks the host to do. Calls come from the goroutine
// that drives the Node, one at a time.
type Actions interface {
	// BecomeMaster claims the group's virtual addresses (add them, send
	// gratuitous ARP / unsolicited NA). It is called before the group
	// counts as MASTER; an error makes it fall back to BACKUP.
	BecomeMaster(t Transition, vips []netip.Prefix) error
	// Release gives the addresses up. It is called on every transition
	// into BACKUP or INIT, including INIT -> BACKUP at start, so it must be
	// idempotent; errors are logged.
	Release(t Transition, vips []netip.Prefix) error
}

// Announcer is implemented by Actions that can announce a MASTER's
// addresses again (gratuitous ARP / unsolicited NA) without a transition.
// A MASTER does so when it hears another node advertise as master for its
// VHID and stays master: that node's neighbours may have moved to it (a
// healed split brain, a returned cable), and it will give the addresses
// up without telling them. At most once per advertisement interval.
//
// first is true for the first announcement of an episode: another master
// heard after none for three advertisement intervals. Work that one
// episode needs once (asking the other side for its states) keys on it;
// the announcement itself repeats, since neighbours may move back to the
// other master while it keeps advertising.
type Announcer interface {
	Announce(parent string, vhid uint8, vips []netip.Prefix, first bool) error
}

// Sender transmits one encoded advertisement out of parent to dst, with
// TTL / hop limit 255. An error counts toward send-error demotion.
type Sender interface {
	Send(parent string, dst netip.Addr, payload []byte) error
}

// Packet is one received CARP packet. Payload is the IP payload (the CARP
// header), borrowed for the duration of the call.
type Packet struct {
	Src, Dst netip.Addr
	TTL      uint8 // IPv4 TTL or IPv6 hop limit as received
	Payload  []byte
}

// Stats counts what a group (or a whole Node) did.
type Stats struct {
	Received    uint64 // advertisements accepted and processed
	Sent        uint64 // advertisements handed to the Sender without error
	SendErrors  uint64
	Transitions uint64
	// Reannounces counts a MASTER's announcements of its addresses
	// without a transition (Announcer).
	Reannounces uint64
	Rejects     [NumRejects]uint64
}

func (s *Stats) add(o Stats) {
	s.Received += o.Received
	s.Sent += o.Sent
	s.SendErrors += o.SendErrors
	s.Transitions += o.Transitions
	s.Reannounces += o.Reannounces
	for i := range s.Rejects {
		s.Rejects[i] += o.Rejects[i]
	}
}

// skewUsec is how both kernels turn advskew into time:
// tv_usec = advskew * 1000000 / 256, in integer microseconds.
func skewUsec(skew int) time.Duration {
	return time.Duration(skew*1000000/256) * time.Microsecond
}

// advTime is the timeval BSD compares priorities with: advbase seconds plus
// advskew/256 seconds. Lower is better (advertises more often).
func advTime(base, skew uint8) time.Duration {
	return time.Duration(base)*time.Second + skewUsec(int(skew))
}

// AdvInterval is how often a master advertises: advbase + advskew/256 s.
// OpenBSD allows advbase 0; with advskew also 0 it uses 1/256 s.
func AdvInterval(base, skew uint8) time.Duration {
	if base == 0 && skew == 0 {
		return skewUsec(1)
	}
	return advTime(base, skew)
}

// MasterDown is how long a backup waits without an advertisement before it
// takes over. Both kernels use 3*advbase + advskew/256 s (carp_setrun); for
// advbase 0 OpenBSD uses 3*advskew/256 s, or 3/256 s when advskew is 0 too.
func MasterDown(base, skew uint8) time.Duration {
	if base == 0 {
		if skew == 0 {
			return skewUsec(3)
		}
		return skewUsec(3 * int(skew))
	}
	return 3*time.Duration(base)*time.Second + skewUsec(int(skew))
}
