package nft

import (
	"fmt"
	"net/netip"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func rangesString(rs []Range) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("[%s-%s]", r.From, r.To)
	}
	return s
}

func TestMergePrefixes(t *testing.T) {
	tests := []struct {
		in   []netip.Prefix
		want string
	}{
		{pfx("192.0.2.0/25", "192.0.2.128/25"), "[192.0.2.0-192.0.2.255]"},
		{pfx("192.0.2.0/24", "192.0.2.7/32"), "[192.0.2.0-192.0.2.255]"},
		{pfx("198.51.100.1/32", "192.0.2.1/32"), "[192.0.2.1-192.0.2.1][198.51.100.1-198.51.100.1]"},
		{pfx("0.0.0.0/0", "10.0.0.0/8"), "[0.0.0.0-255.255.255.255]"},
		{pfx("2001:db8::/127", "2001:db8::2/128"), "[2001:db8::-2001:db8::2]"},
		{pfx("255.255.255.255/32", "0.0.0.0/32"), "[0.0.0.0-0.0.0.0][255.255.255.255-255.255.255.255]"},
		// Families never merge, even when "adjacent" by value.
		{pfx("255.255.255.255/32", "::/128"), "[255.255.255.255-255.255.255.255][::-::]"},
	}
	for _, tt := range tests {
		if got := rangesString(MergePrefixes(tt.in)); got != tt.want {
			t.Errorf("MergePrefixes(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestSubtractAndPrefixes(t *testing.T) {
	cur := MergePrefixes(pfx("192.0.2.0/24"))
	left := SubtractRanges(cur, MergePrefixes(pfx("192.0.2.128/32", "192.0.2.0/31")))
	if got, want := rangesString(left), "[192.0.2.2-192.0.2.127][192.0.2.129-192.0.2.255]"; got != want {
		t.Fatalf("SubtractRanges = %s, want %s", got, want)
	}
	var ps []string
	for _, r := range left {
		for _, p := range RangePrefixes(r) {
			ps = append(ps, p.String())
		}
	}
	want := "[192.0.2.2/31 192.0.2.4/30 192.0.2.8/29 192.0.2.16/28 192.0.2.32/27 192.0.2.64/26 192.0.2.129/32 192.0.2.130/31 192.0.2.132/30 192.0.2.136/29 192.0.2.144/28 192.0.2.160/27 192.0.2.192/26]"
	if got := fmt.Sprint(ps); got != want {
		t.Errorf("RangePrefixes = %s\nwant %s", got, want)
	}
	if !RangesContain(left, netip.MustParseAddr("192.0.2.200")) || RangesContain(left, netip.MustParseAddr("192.0.2.128")) || RangesContain(left, netip.MustParseAddr("::1")) {
		t.Error("RangesContain wrong")
	}
	if got := RangePrefixes(Range{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")}); len(got) != 1 || got[0].Bits() != 0 {
		t.Errorf("full range = %v", got)
	}
}

func TestElementsRoundTrip(t *testing.T) {
	rs := MergePrefixes(pfx("192.0.2.0/24", "198.51.100.7/32", "255.255.255.0/24"))
	els := rangeElements(rs)
	// The last range runs to the end of the address space: no end element.
	if len(els) != 5 {
		t.Fatalf("got %d elements, want 5", len(els))
	}
	// The kernel dumps in its own order.
	for i, j := 0, len(els)-1; i < j; i, j = i+1, j-1 {
		els[i], els[j] = els[j], els[i]
	}
	if got, want := rangesString(elementRanges(els)), rangesString(rs); got != want {
		t.Errorf("round trip = %s, want %s", got, want)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	long := ""
	for len(long) < 700 {
		long += "pass in quick on eth0 proto tcp from any to 192.0.2.1 port 80 "
	}
	recs := []Record{
		{Kind: KindFilter, Nr: 0, Pos: "pf.conf:3:1", Text: "block drop all", Labels: []string{"a b", "c"}},
		{Kind: KindRDR, Nr: 12, Pos: "pf.conf:9:1", Text: long},
		{Kind: KindNAT, Nr: 1, Pos: "x\nY", Text: ""},
	}
	var comments []string
	for _, r := range recs {
		for _, c := range encodeRecord(r) {
			if len(commentData(c)) > 256 {
				t.Fatalf("chunk of %d bytes does not fit the kernel's user data", len(commentData(c)))
			}
			got, ok := dataComment(commentData(c))
			if !ok || got != c {
				t.Fatalf("comment TLV round trip: %q %v", got, ok)
			}
			comments = append(comments, c)
		}
	}
	got, err := decodeRecords(comments)
	if err != nil {
		t.Fatal(err)
	}
	recs[2].Pos = "x Y"
	if fmt.Sprint(got) != fmt.Sprint(recs) {
		t.Errorf("decodeRecords =\n%v\nwant\n%v", got, recs)
	}
	for _, bad := range [][]string{{"mcontinuation first"}, {"Mfilter x\n\n"}, {"M"}, {"junk"}} {
		if _, err := decodeRecords(bad); err == nil {
			t.Errorf("decodeRecords(%q) succeeded", bad)
		}
	}
	if _, ok := dataComment([]byte{0, 200, 'x'}); ok {
		t.Error("truncated TLV accepted")
	}
}

func TestRefRoundTrip(t *testing.T) {
	for _, r := range []Ref{{KindFilter, 3, 0}, {KindBINAT, 0, 2}} {
		got, ok := ParseRef(r.String())
		if !ok || got != r {
			t.Errorf("ParseRef(%q) = %v %v", r.String(), got, ok)
		}
	}
	for _, s := range []string{"pf filter", "pf nope 1", "pf filter -1", "pf filter 1/x", "xx filter 1"} {
		if _, ok := ParseRef(s); ok {
			t.Errorf("ParseRef(%q) accepted", s)
		}
	}
}
