package nft

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TableFlagOwner is NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to
// the netlink socket that created it; only that socket may change it, and
// the kernel deletes it when the socket closes, however its process ended.
const TableFlagOwner uint32 = 0x2

// Owner is a netlink socket that owns the tables it creates. It is what
// lets the kernel notice a dead daemon without the daemon's help: a table
// whose existence means "the daemon is alive" vanishes when the process
// does, SIGKILL and the OOM killer included. Safe for concurrent use.
type Owner struct {
	mu sync.Mutex
	nl *netlink.Conn
}

// DialOwner opens an owning socket (in the namespace of WithNetNS, if given).
func DialOwner(opts ...Option) (*Owner, error) {
	c := Open(opts...)
	cfg := &netlink.Config{}
	if c.netnsFD >= 0 {
		cfg.NetNS = c.netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return &Owner{nl: nl}, nil
}

// Apply encodes what build adds to the library connection it is handed
// and commits it in one transaction on the owning socket. Every table the
// batch creates is created owned (TableFlagOwner); build must not flush.
func (o *Owner) Apply(build func(c *nftables.Conn) error) error {
	b, err := newBatch()
	if err != nil {
		return err
	}
	if err := build(b.Conn); err != nil {
		return err
	}
	msgs, err := b.encode()
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	for i := range msgs {
		if isNewTable(msgs[i]) {
			if err := rewriteTableFlags(&msgs[i], func(f uint32) uint32 { return f | TableFlagOwner }); err != nil {
				return err
			}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nl == nil {
		return errors.New("nftables: owner socket closed")
	}
	return transact(o.nl, msgs, false)
}

// Close closes the socket; the kernel then deletes the tables it owns.
func (o *Owner) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nl == nil {
		return nil
	}
	err := o.nl.Close()
	o.nl = nil
	return err
}
