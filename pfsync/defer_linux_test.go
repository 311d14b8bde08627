package pfsync

import (
	"bufio"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// kernelConfig returns the running kernel's configuration options that
// are built in or modules (from /proc/config.gz), or nil when the kernel
// does not expose it.
func kernelConfig(t *testing.T) map[string]bool {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return nil
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]bool{}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && (v == "y" || v == "m") {
			cfg[k] = true
		}
	}
	return cfg
}

// TestDeferSupported runs the run-time probe in a fresh namespace and,
// where the kernel exposes its configuration, checks the verdict against
// it: nil with both features, else an error naming the first one missing.
func TestDeferSupported(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "defer")
	var err error
	n.do(t, func() error { err = DeferSupported(); return nil })
	t.Logf("DeferSupported: %v", err)
	if err != nil && !errors.Is(err, ErrDeferUnsupported) {
		t.Fatalf("not an ErrDeferUnsupported: %v", err)
	}
	cfg := kernelConfig(t)
	if cfg == nil {
		t.Log("no /proc/config.gz: the probe's verdict is not cross-checked")
		if err != nil && !strings.Contains(err.Error(), "CONFIG_") {
			t.Fatalf("the error names no feature: %v", err)
		}
		return
	}
	// Each missing feature is named; one present is not.
	for opt, name := range map[string]string{
		"CONFIG_NETFILTER_NETLINK_QUEUE":   FeatureNFQueue,
		"CONFIG_NETFILTER_NETLINK_GLUE_CT": FeatureNFQueueCT,
		"CONFIG_NFT_QUEUE":                 FeatureNFTQueue,
	} {
		if opt == "CONFIG_NETFILTER_NETLINK_GLUE_CT" && !cfg["CONFIG_NETFILTER_NETLINK_QUEUE"] {
			continue // not probed without a queue
		}
		named := err != nil && strings.Contains(err.Error(), name)
		if named == cfg[opt] {
			t.Errorf("%s is %v in the kernel's config, but the probe's error (%v) names it: %v", opt, cfg[opt], err, named)
		}
	}
	// The probe leaves no table behind.
	c, cerr := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if cerr != nil {
		t.Fatal(cerr)
	}
	if tables, err := c.ListTables(); err != nil || len(tables) != 0 {
		t.Fatalf("after the probe: %d tables (%v)", len(tables), err)
	}
}
