package carp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestUpdateKeepsStateAndAdvertisesNewValues(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(4 * time.Second)
	e.wantState(1, Master)
	ntrans := len(e.rec.trans)

	c2 := c
	c2.AdvSkew, c2.Pass = 100, "new secret"
	c2.VIPs = []netip.Prefix{netip.MustParsePrefix("192.0.2.51/24"), netip.MustParsePrefix("192.0.2.52/24")}
	e.out = nil
	added, removed, err := e.node.Update(c2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, c2.VIPs[1:]) || len(removed) != 0 {
		t.Fatalf("added %v removed %v", added, removed)
	}
	e.wantState(1, Master)
	if len(e.rec.trans) != ntrans {
		t.Fatalf("Update caused transitions: %+v", e.rec.trans[ntrans:])
	}
	// At once, with the new advskew, signed with the new password over
	// the new VIP list.
	if len(e.out) != 1 || e.out[0].hdr.AdvSkew != 100 {
		t.Fatalf("sent %+v, want one advertisement with advskew 100", e.out)
	}
	key, _ := NewKey("new secret")
	auth := NewAuth(key, 1, []netip.Addr{c2.VIPs[0].Addr(), c2.VIPs[1].Addr()})
	if h := e.out[0].hdr; h.HMAC != auth.Sign(h.Counter) {
		t.Fatal("advertisement not signed with the new password and VIPs")
	}
	// The interval follows: 1 s + 100/256 s.
	e.out = nil
	e.advance(1390 * time.Millisecond)
	if len(e.out) != 0 {
		t.Fatalf("advertised before the new interval: %+v", e.out)
	}
	e.advance(20 * time.Millisecond)
	if len(e.out) != 1 {
		t.Fatalf("%d advertisements after the new interval", len(e.out))
	}
	// A peer with the old password is now rejected.
	before := e.group(1).Stats().Rejects[RejectAuth]
	e.deliver(c, 1, 0, 0)
	if got := e.group(1).Stats().Rejects[RejectAuth]; got != before+1 {
		t.Fatalf("old-password advertisement not rejected (%d -> %d)", before, got)
	}
	e.wantState(1, Master)
	// Removing a VIP is reported.
	_, removed, err = e.node.Update(c)
	if err != nil || !slices.Equal(removed, c2.VIPs[1:]) {
		t.Fatalf("removed %v, err %v", removed, err)
	}
	if _, _, err := e.node.Update(Config{VHID: 9, Parent: "eth0", VIPs: c.VIPs}); err == nil {
		t.Fatal("Update of an unknown vhid succeeded")
	}
}

func TestAddRunningAndRemoveGroup(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(4 * time.Second)
	e.wantState(1, Master)
	c2 := c
	c2.VHID, c2.VIPs = 2, []netip.Prefix{netip.MustParsePrefix("192.0.2.61/24")}
	if _, err := e.node.AddRunningGroup(c2); err != nil {
		t.Fatal(err)
	}
	e.wantState(2, Backup) // its parent is up: out of INIT at once
	e.advance(4 * time.Second)
	e.wantState(2, Master)
	e.out = nil
	if err := e.node.RemoveGroup("eth0", 1); err != nil {
		t.Fatal(err)
	}
	if len(e.out) != 1 || e.out[0].hdr.AdvBase != 255 || e.out[0].hdr.AdvSkew != 255 || e.out[0].hdr.VHID != 1 {
		t.Fatalf("removing a MASTER sent %+v, want one bow-out for vhid 1", e.out)
	}
	last := e.rec.trans[len(e.rec.trans)-1]
	if last.VHID != 1 || last.From != Master {
		t.Fatalf("last transition %+v, want vhid 1 leaving MASTER", last)
	}
	if len(e.node.Groups()) != 1 {
		t.Fatalf("%d groups left", len(e.node.Groups()))
	}
}

// announcer records Announce calls beside the recorder's transitions.
type announcer struct {
	*recorder
	n, first int
}

func (a *announcer) Announce(_ string, _ uint8, _ []netip.Prefix, first bool) error {
	a.n++
	if first {
		a.first++
	}
	return nil
}

func TestMasterReannouncesWhenAnotherMasterAdvertises(t *testing.T) {
	c := cfg1()
	e := newEnv(t)
	a := &announcer{recorder: e.rec}
	n, err := NewNode(NodeOptions{Clock: e.clk, Actions: a, Sender: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	e.node = n
	if _, err := n.AddGroup(c); err != nil {
		t.Fatal(err)
	}
	n.SetParentUp("eth0", true)
	e.advance(4 * time.Second)
	e.wantState(1, Master)
	// A slower master (a healed split brain): we stay MASTER and announce
	// the addresses again, once per advertisement interval.
	e.deliver(c, 1, 200, 0)
	e.deliver(c, 1, 200, 0)
	e.wantState(1, Master)
	if a.n != 1 {
		t.Fatalf("%d announcements for two adverts within an interval, want 1", a.n)
	}
	e.advance(1100 * time.Millisecond)
	e.deliver(c, 1, 200, 0)
	if a.n != 2 {
		t.Fatalf("%d announcements after an interval, want 2", a.n)
	}
	// A bow-out is not another master.
	e.advance(1100 * time.Millisecond)
	e.deliver(c, 255, 255, 0)
	if a.n != 2 {
		t.Fatalf("a bow-out triggered an announcement")
	}
	if got := e.group(1).Stats().Reannounces; got != 2 {
		t.Fatalf("Reannounces %d", got)
	}
	// The adverts 1.1 s apart were one episode: flagged first once. One
	// after three quiet intervals starts another.
	if a.first != 1 {
		t.Fatalf("%d first announcements in one episode, want 1", a.first)
	}
	e.advance(3100 * time.Millisecond)
	e.deliver(c, 1, 200, 0)
	if a.n != 3 || a.first != 2 {
		t.Fatalf("after three quiet intervals: %d announcements, %d first; want 3, 2", a.n, a.first)
	}
}

func TestYieldingMasterAdvertisesOnce(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(4 * time.Second)
	e.wantState(1, Master)
	e.out = nil
	e.deliver(c, 1, 0, 0) // a more frequent master: yield
	e.wantState(1, Backup)
	if len(e.out) != 1 || e.out[0].hdr.AdvSkew != c.AdvSkew || e.out[0].hdr.AdvBase != c.AdvBase {
		t.Fatalf("yielding sent %+v, want one advertisement with our own advbase/advskew", e.out)
	}
	e.out = nil
	e.advance(2 * time.Second)
	if len(e.out) != 0 {
		t.Fatalf("a BACKUP advertised: %+v", e.out)
	}
}
