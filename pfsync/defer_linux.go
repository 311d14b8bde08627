package pfsync

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// The kernel features pf's `defer` needs on Linux, by the names a kernel
// configuration and its modules use.
const (
	// FeatureNFQueue lets user space hold a packet and give its verdict
	// later (the held first packet of a new state).
	FeatureNFQueue = "nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)"
	// FeatureNFTQueue is the nftables queue statement, with which a rule
	// hands a new connection's first packet to that queue (and, with
	// bypass, lets it pass when no one listens).
	FeatureNFTQueue = "nft_queue (CONFIG_NFT_QUEUE)"
)

// ErrDeferUnsupported is wrapped by DeferSupported's error.
var ErrDeferUnsupported = errors.New("pfsync defer is not supported by this kernel")

// DeferSupported reports whether the calling thread's network namespace
// can run pfsync's `defer`: holding a new state's first packet until the
// peer acknowledged the state. It returns nil when it can, else an error
// wrapping ErrDeferUnsupported that names the missing kernel feature
// (FeatureNFQueue or FeatureNFTQueue), for the daemon to report when
// ifconfig_pfsync0 has `defer`. It probes at run time, without leaving
// anything behind: it binds and unbinds an NFQUEUE queue, and commits one
// nftables transaction that adds a table with a queue rule and deletes it
// again (the kernel rejects the whole transaction when it lacks the queue
// expression, and loads the module first if it is one).
func DeferSupported() error {
	if err := probeNFQueue(deferProbeQueue); err != nil {
		return fmt.Errorf("%w: it needs %s: %v", ErrDeferUnsupported, FeatureNFQueue, err)
	}
	if err := probeNFTQueue(); err != nil {
		return fmt.Errorf("%w: it needs %s: %v", ErrDeferUnsupported, FeatureNFTQueue, err)
	}
	return nil
}

// deferProbeQueue is the queue number the probe binds (and unbinds at
// once); a queue another program holds makes the bind fail with EBUSY,
// which still shows the subsystem exists.
const deferProbeQueue = 65000

// nfnetlink_queue message and attribute numbers (linux/netfilter/
// nfnetlink_queue.h).
const (
	nfnlSubsysQueue  = 3
	nfqnlMsgConfig   = 2
	nfqaCfgCmd       = 1
	nfqnlCfgCmdBind  = 1
	nfqnlCfgCmdUbind = 2
)

func probeNFQueue(num uint16) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return fmt.Errorf("netfilter netlink socket: %w", err)
	}
	defer c.Close()
	cmd := func(command uint8) error {
		// struct nfqnl_msg_config_cmd { u8 command; u8 _pad; be16 pf; }
		body := []byte{command, 0, 0, 0}
		m, err := netfilter.MarshalNetlink(netfilter.Header{
			SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgConfig,
			Family: netfilter.ProtoUnspec, ResourceID: num,
			Flags: netlink.Request | netlink.Acknowledge,
		}, []netfilter.Attribute{{Type: nfqaCfgCmd, Data: body}})
		if err != nil {
			return err
		}
		_, err = c.Execute(m)
		return err
	}
	err = cmd(nfqnlCfgCmdBind)
	switch {
	case err == nil:
		return cmd(nfqnlCfgCmdUbind)
	case isErrno(err, unix.EBUSY):
		return nil // another program's queue: the subsystem is there
	}
	return err
}

func probeNFTQueue() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Name: "pfcarp_defer_probe", Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "probe", Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Queue{Num: deferProbeQueue, Flag: expr.QueueFlagBypass},
	}})
	c.DelTable(t)
	return c.Flush()
}
