package pfsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

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
	// FeatureNFQueueCT hands a queued packet's conntrack entry (still
	// unconfirmed, so in no table yet and without an event) to user space
	// with the packet: the state to send before the packet goes.
	FeatureNFQueueCT = "nfnetlink_queue conntrack glue (CONFIG_NETFILTER_NETLINK_GLUE_CT)"
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
// wrapping ErrDeferUnsupported that names every missing kernel feature
// (FeatureNFQueue, FeatureNFQueueCT, FeatureNFTQueue), for the daemon to
// report when ifconfig_pfsync0 has `defer`. It probes at run time and
// leaves nothing behind: it binds an NFQUEUE queue, asks it for conntrack
// information and unbinds it, and commits one nftables transaction that
// adds a table with a queue rule and deletes it again (the kernel rejects
// the whole transaction when it lacks the queue expression, and loads
// the module first if it is one).
func DeferSupported() error {
	var missing, why []string
	switch err := probeNFQueue(deferProbeQueue); {
	case err == nil:
	case errors.Is(err, errNoQueueCT):
		missing, why = append(missing, FeatureNFQueueCT), append(why, err.Error())
	default:
		missing, why = append(missing, FeatureNFQueue), append(why, err.Error())
	}
	if err := probeNFTQueue(); err != nil {
		missing, why = append(missing, FeatureNFTQueue), append(why, "nftables queue rule: "+err.Error())
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: it needs %s (%s)", ErrDeferUnsupported, strings.Join(missing, " and "), strings.Join(why, "; "))
}

// errNoQueueCT: the queue binds but cannot pass conntrack information.
var errNoQueueCT = errors.New("nfqueue: no conntrack information (EOPNOTSUPP)")

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
	case isErrno(err, unix.EBUSY):
		return nil // another program's queue: the subsystem is there
	default:
		return err
	}
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFConntrack)
	m, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgConfig, Family: netfilter.ProtoUnspec,
		ResourceID: num, Flags: netlink.Request | netlink.Acknowledge,
	}, []netfilter.Attribute{{Type: nfqaCfgFlags, Data: flags}, {Type: nfqaCfgMask, Data: flags}})
	if err == nil {
		_, err = c.Execute(m)
	}
	uerr := cmd(nfqnlCfgCmdUbind)
	if isErrno(err, unix.EOPNOTSUPP) {
		return errNoQueueCT
	}
	if err != nil {
		return err
	}
	return uerr
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
