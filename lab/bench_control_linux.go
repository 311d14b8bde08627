package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfload"
)

// controlHost is the balancer the control-plane rulesets are expanded on.
var controlHost = &netdb.Fixed{
	Interfaces: []netdb.Interface{
		{Name: "lo", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("127.0.0.1/8")}}},
		{Name: "eth0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("198.51.100.52/24")}}},
		{Name: "eth1", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("192.0.2.10/24")}}},
	},
}

// bigTableAddr is the i-th address of the big table: every other address
// from 10.0.0.0, so no two merge into one interval.
func bigTableAddr(i int) netip.Addr {
	v := uint32(10<<24) + uint32(2*i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// benchControl measures pfcarp's control plane in a namespace of its own:
// `pfctl -f` of 10,000 rules (parse, expand, compile, one netlink
// transaction) and a table of N addresses loaded from a table file, then
// -T add, delete, test of one address and -T show of all.
func benchControl(ctx context.Context, b *Bench, r *Report) error {
	const rules = 10000
	nTable := 1000000
	if b.Quick {
		nTable = 10000
	}
	var src strings.Builder
	src.WriteString("set skip on lo\n")
	for i := 0; i < rules; i++ {
		fmt.Fprintf(&src, "pass in on eth0 proto tcp from 10.%d.%d.0/24 to any port %d keep state\n", i/256, i%256, 1000+i%50000)
	}
	var tfile strings.Builder
	for i := 0; i < nTable; i++ {
		tfile.WriteString(bigTableAddr(i).String())
		tfile.WriteByte('\n')
	}
	tconf := "table <big> persist file \"big.txt\"\nblock in quick on eth0 from <big> to any\n"
	read := func(p string) ([]byte, error) {
		if p == "big.txt" {
			return []byte(tfile.String()), nil
		}
		return nil, fmt.Errorf("no file %s", p)
	}
	tname := fmt.Sprintf("%d-address table", nTable)
	one := netip.MustParseAddr("11.0.0.1")
	mid := bigTableAddr(nTable / 2)

	nsName := b.Prefix + "ctl"
	if err := createNS(nsName); err != nil {
		return err
	}
	defer func() {
		if derr := deleteNS(nsName); derr != nil {
			b.logf("removing namespace %s: %v", nsName, derr)
		}
	}()
	f, err := os.Open(filepath.Join(netnsDir, nsName))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // a namespace handle: nothing to lose
	c := nft.Open(nft.WithNetNS(int(f.Fd())))
	timed := func(name string, fn func() error) error {
		t0 := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		add(r, "control", name, "ms", ms(time.Since(t0)))
		return nil
	}
	for run := 0; run < b.runs(); run++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var rs *pfload.Ruleset
		var prog *nft.Program
		t0 := time.Now()
		if err := timed("10000 rules: parse+expand", func() error {
			var err error
			rs, err = parseExpand(src.String(), nil)
			return err
		}); err != nil {
			return err
		}
		if err := timed("10000 rules: compile", func() error {
			var err error
			prog, err = compile.CompileLoad(rs, compile.Options{})
			return err
		}); err != nil {
			return err
		}
		if err := timed("10000 rules: load (one transaction)", func() error { return c.Load(prog) }); err != nil {
			return err
		}
		add(r, "control", "10000 rules: parse+compile+load", "ms", ms(time.Since(t0)))

		t0 = time.Now()
		if err := timed(tname+": parse+compile", func() error {
			var err error
			if rs, err = parseExpand(tconf, read); err != nil {
				return err
			}
			prog, err = compile.CompileLoad(rs, compile.Options{})
			return err
		}); err != nil {
			return err
		}
		if err := timed(tname+": load (kernel)", func() error { return c.Load(prog) }); err != nil {
			return err
		}
		add(r, "control", tname+": load", "ms", ms(time.Since(t0)))
		if err := timed(tname+": add 1", func() error {
			n, err := c.ChangeTable("big", nft.TableAdd, []netip.Prefix{netip.PrefixFrom(one, 32)})
			if err == nil && n != 1 {
				err = fmt.Errorf("added %d, want 1", n)
			}
			return err
		}); err != nil {
			return err
		}
		if err := timed(tname+": test 1", func() error {
			in, err := c.TableTest("big", []netip.Addr{mid})
			if err == nil && !in[0] {
				err = fmt.Errorf("%s not in the table", mid)
			}
			return err
		}); err != nil {
			return err
		}
		if err := timed(tname+": delete 1", func() error {
			n, err := c.ChangeTable("big", nft.TableDelete, []netip.Prefix{netip.PrefixFrom(mid, 32)})
			if err == nil && n != 1 {
				err = fmt.Errorf("deleted %d, want 1", n)
			}
			return err
		}); err != nil {
			return err
		}
		if err := timed(tname+": show", func() error {
			es, err := c.TableEntries("big")
			if err == nil && len(es) != nTable {
				err = fmt.Errorf("%d entries, want %d", len(es), nTable)
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// parseExpand reads a pf.conf on controlHost as pfctl -f does
// (pfload.Load).
func parseExpand(src string, read func(string) ([]byte, error)) (*pfload.Ruleset, error) {
	if read == nil {
		read = func(p string) ([]byte, error) { return nil, fmt.Errorf("no file %s", p) }
	}
	return pfload.Load(pfload.Input{Name: "pf.conf", Src: []byte(src), ReadFile: read, Host: controlHost})
}
