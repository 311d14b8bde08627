package pflog

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes hex with spaces, newlines and "|" comments removed.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "|")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad golden hex: %v", err)
	}
	return b
}

func TestHeaderGolden(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{
			name: "main ruleset, IPv4, block in",
			h:    NewHeader(Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}, AFInet, "eth0"),
			want: `
				45 02 01 00                                     | length 69, af 2, action block, reason match
				65 74 68 30 00 00 00 00 00 00 00 00 00 00 00 00 | ifname "eth0"
				00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 | ruleset ""
				00 00 00 03                                     | rulenr 3 (big-endian)
				ff ff ff ff                                     | subrulenr -1: main ruleset
				ff ff ff ff                                     | uid UID_MAX
				a0 86 01 00                                     | pid NO_PID 100000 (little-endian)
				00 00 00 00 00 00 00 00                         | rule_uid, rule_pid
				01 00 00 00                                     | dir in, pad[3]
				00 00 00 00                                     | ridentifier
				00 00 00 00                                     | reserve, pad2[3]`,
		},
		{
			name: "anchor, IPv6, pass out, ridentifier",
			h: NewHeader(Meta{Rule: 12, Anchor: "web", SubRule: 2, Action: ActionPass, Dir: DirOut, RIdentifier: 4711},
				AFInet6, "carp-interface-longer"),
			want: `
				45 1c 00 00                                     | length 69, af 28 (FreeBSD AF_INET6), pass, match
				63 61 72 70 2d 69 6e 74 65 72 66 61 63 65 2d 00 | ifname cut to 15 bytes + NUL
				77 65 62 00 00 00 00 00 00 00 00 00 00 00 00 00 | ruleset "web"
				00 00 00 0c                                     | rulenr 12
				00 00 00 02                                     | subrulenr 2
				ff ff ff ff a0 86 01 00                         | uid, pid
				00 00 00 00 00 00 00 00                         | rule_uid, rule_pid
				02 00 00 00                                     | dir out
				00 00 12 67                                     | ridentifier 4711 (big-endian)
				00 00 00 00`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			got := tt.h.AppendTo(nil)
			if len(got) != HeaderLen {
				t.Fatalf("len = %d, want %d", len(got), HeaderLen)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendTo =\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
			}
			back, n, err := ParseHeader(got)
			if err != nil || n != HeaderLen {
				t.Fatalf("ParseHeader = %d, %v", n, err)
			}
			wantBack := tt.h
			wantBack.IfName = cString([]byte(wantBack.IfName + "\x00")[:min(len(wantBack.IfName), 15)])
			if back != wantBack {
				t.Fatalf("ParseHeader = %+v, want %+v", back, wantBack)
			}
		})
	}
}

func TestAppendToAppends(t *testing.T) {
	b := NewHeader(Meta{Rule: 1}, AFInet, "lo").AppendTo([]byte("xy"))
	if len(b) != 2+HeaderLen || string(b[:2]) != "xy" || b[2] != realHeaderLen {
		t.Fatalf("AppendTo did not append: % x", b[:4])
	}
}

func TestParseHeaderOtherLayouts(t *testing.T) {
	// An OpenBSD header (length 100): saddr follows dir's padding where
	// FreeBSD has ridentifier, and must not be read as one.
	b := make([]byte, 100+20)
	b[0] = 100
	b[1] = AFInet
	b[60] = byte(DirIn)
	copy(b[64:], []byte{192, 0, 2, 1})
	h, n, err := ParseHeader(b)
	if err != nil || n != 100 || h.RIdentifier != 0 || h.Dir != DirIn {
		t.Fatalf("OpenBSD header: %+v, %d, %v", h, n, err)
	}
	// An old FreeBSD header (length 61, padded to 64).
	b = make([]byte, 64)
	b[0] = 61
	if _, n, err := ParseHeader(b); err != nil || n != 64 {
		t.Fatalf("61-byte header: %d, %v", n, err)
	}
	for _, bad := range [][]byte{nil, {60}, append([]byte{69}, make([]byte, 70)...)} {
		if _, _, err := ParseHeader(bad); err == nil {
			t.Errorf("ParseHeader(% x...) succeeded", bad[:min(len(bad), 2)])
		}
	}
}

// FuzzParseHeader checks that ParseHeader never panics and that a header it
// accepts re-encodes to what it read (for FreeBSD's own length).
func FuzzParseHeader(f *testing.F) {
	f.Add(NewHeader(Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}, AFInet, "eth0").AppendTo(nil)) // pfcarp's own
	f.Add(append([]byte{100}, make([]byte, 99)...))                                                // OpenBSD length
	full := NewHeader(Meta{}, AFInet, "").AppendTo(nil)
	copy(full[20:36], "0123456789abcdef")
	f.Add(full)                // 16-byte ruleset without a NUL (the fuzzer found it)
	f.Add([]byte{61, 2, 0, 0}) // short
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			return
		}
		if n < 64 || n > len(b) || n%4 != 0 {
			t.Fatalf("ParseHeader returned offset %d for %d bytes", n, len(b))
		}
		if b[0] != realHeaderLen {
			return
		}
		// A name filling all 16 bytes without a NUL reads back whole but
		// is written cut to 15, as the BSD kernels write it.
		again, _, err := ParseHeader(h.AppendTo(nil))
		want := h
		want.IfName = want.IfName[:min(len(want.IfName), ifNameSize-1)]
		want.Ruleset = want.Ruleset[:min(len(want.Ruleset), rulesetNameSize-1)]
		if err != nil || again != want {
			t.Fatalf("re-encoding %+v gave %+v, %v", h, again, err)
		}
	})
}
