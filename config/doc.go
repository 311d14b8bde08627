// Package config owns pfcarp's node config: one FreeBSD rc.conf-style file
// per node, parsed into a typed, validated [Node], and the lints of
// `pfcarp check` over one node or a pair ([Check]).
//
// It does not parse pf.conf (package pfconf does; its lints plug in through
// [RulesLinter]), touch the network or the kernel, or apply anything: it
// reads files (the rc.conf, its sysctl.conf, a pfsync key file) through an
// injectable ReadFile and returns values.
//
// # Syntax
//
// The file is the subset of sh that rc.conf files use, so the seed's lines
// work with only interface names changed: NAME=value, NAME="value" (with
// \ escapes and $NAME / ${NAME} expansion of names set earlier in the
// file), NAME='value' (literal), # comments, blank lines, several
// assignments on one line, backslash-newline continuations. Anything sh
// would execute ($(...), `...`, commands, pipes, ${x:-y}) is an error:
// pfcarp reads the file, it never runs it. A later assignment overrides an
// earlier one, as in sh; because inside one file that is usually a
// copy-paste slip, it is reported as a warning (duplicate-key) naming both
// lines. Every finding is "file:line:col: severity: message [id]"; errors
// are collected (up to 50), never only the first.
//
// # Keys
//
// Booleans take YES/NO (also TRUE/FALSE, ON/OFF, 1/0, any case), as
// checkyesno does.
//
//	key                    meaning
//	hostname               the node's name (used in messages)
//	gateway_enable         YES: forward IPv4 (net.ipv4.ip_forward)
//	ipv6_gateway_enable    YES: forward IPv6
//	defaultrouter          IPv4 default gateway, or NO
//	ipv6_defaultrouter     IPv6 default gateway, or NO
//	cloned_interfaces      the carpN interfaces to create ("carp0 carp1")
//	ifconfig_IF            ifconfig arguments for IF (see below)
//	ifconfig_IF_ipv6       more ifconfig arguments for IF, usually inet6
//	ifconfig_IF_aliasN     more addresses (N = 0, 1, ...; FreeBSD stops at a gap, pfcarp warns)
//	pf_enable              YES: load pf_rules
//	pf_rules               the pf.conf (default /etc/pf.conf); relative paths are relative to the rc.conf's directory
//	pf_flags               extra pfctl flags (kept for later; not interpreted yet)
//	pflog_enable           YES: log "log" rules to pflog_logfile
//	pflog_logfile          pcap file for pflog (FreeBSD default /var/log/pflog)
//	pflog_flags            extra pflogd flags (kept for later; not interpreted yet)
//	relayd_enable          YES: run relayd's redirections (health-checked pools in anchors relayd/NAME; pf.conf needs anchor "relayd/*")
//	relayd_flags           relayd's flags: -f FILE names the relayd.conf (default /etc/pfcarp/relayd.conf); -d, -v accepted
//	pfsync_enable          FreeBSD >= 9 form of pfsync: YES with pfsync_syncdev ...
//	pfsync_syncdev         ... the sync interface
//	pfsync_syncpeer        ... a unicast peer instead of multicast 224.0.0.240
//	pfsync_ifconfig        ... more pfsync0 ifconfig arguments (maxupd N, defer)
//	carp_preempt           pfcarp: YES is sysctl net.inet.carp.preempt=1
//	carp_vmac              pfcarp: YES puts each VIP on a macvlan with the VRRP MAC 00:00:5e:00:01:vhid
//	carp_up_cmd            pfcarp: command run (sh -c) when a group becomes MASTER
//	carp_down_cmd          pfcarp: command run when a group leaves MASTER
//	pfsync_key             pfcarp: shared secret authenticating pfsync messages
//	pfsync_key_file        pfcarp: file holding that secret (trailing newline dropped)
//	pfcarp_control_socket  pfcarp: the daemon's control socket (absolute path)
//	pfcarp_metrics         pfcarp: ADDR:PORT for Prometheus metrics (/metrics) and the status page (/); off by default
//	pfcarp_peer_status     pfcarp: the peer's pfcarp_metrics ADDR:PORT, shown on the status page
//	pfcarp_nice            pfcarp: the daemon's scheduling priority, -20 to 19 (as nice(1)); unset: as started
//	pfcarp_sysctl_conf     pfcarp: the sysctl.conf to read, or NO (see below)
//
// Unknown keys are always reported with their line. Keys that look meant for
// pfcarp (pf*, carp*, ifconfig_*, gateway*, ..., or within two edits of a
// known key) are errors with a "did you mean", so pf_enabel=YES cannot
// leave pf silently off. Common FreeBSD service keys (sshd_enable,
// ntpd_enable, any other *_enable, ...) are warnings (ignored-key): a
// copied rc.conf still loads. Other unknown keys are warnings too.
//
// # ifconfig arguments
//
// One ifconfig command per variable, as FreeBSD runs it: inet/inet6, an
// address (A, A/len; IPv4 with "netmask M", dotted or 0x hex; IPv6 with
// "prefixlen N"; an IPv4 address with no mask gets the classful one, as
// FreeBSD's ifconfig does, with a warning), alias, broadcast, up, down,
// mtu N, DHCP/SYNCDHCP/NOSYNCDHCP. Offload and media options (media,
// -rxcsum, tso, ...) are accepted with a warning and ignored. One address
// per line: more go in ifconfig_IF_aliasN.
//
// CARP, FreeBSD < 10: ifconfig_carpN="vhid N [pass P] [advbase N]
// [advskew N] [carpdev IF] [carppeer A] [state backup|master] A/len";
// more VIPs in ifconfig_carpN_aliasN or ifconfig_carpN_ipv6. FreeBSD >= 10:
// the same options on the parent's own line put the address on that vhid
// (ifconfig_eth0_alias0="inet vhid 1 pass x alias 192.0.2.1/32"); options
// for one vhid may be spread over several lines but must not contradict.
// Ranges: vhid 1-255, advbase 0-255 (default 1), advskew 0-254 (default 0;
// 240 and up warns: FreeBSD refuses it and demotion uses 240). A pass over
// 19 bytes is cut to 19 with a warning, exactly as FreeBSD's ifconfig cuts
// it into the 20-byte CARP_KEY_LEN buffer, so a mixed pair still agrees.
//
// The parent of a carpN group is its carpdev, else, as in FreeBSD 7, the
// interface with an address whose subnet holds the VIP: none or more than
// one is an error naming the VIP's line (carp-no-parent,
// carp-parent-ambiguous). A VIP that is also a host address, a VIP in two
// groups and a vhid used twice on one link are errors.
//
// pfsync: ifconfig_pfsync0="up syncdev|syncif IF [syncpeer A] [maxupd N]
// [defer]" or the pfsync_enable form, not both.
//
// # sysctl.conf
//
// FreeBSD sets net.inet.carp.preempt in /etc/sysctl.conf, beside
// /etc/rc.conf, and the seed does. pfcarp reads the file named by
// pfcarp_sysctl_conf, or else sysctl.conf in the rc.conf's directory if
// there is one, so the seed's files work unchanged. It takes
// net.inet.carp.preempt (as carp_preempt; disagreeing with carp_preempt is
// an error), net.inet.ip.forwarding and net.inet6.ip6.forwarding (as the
// gateway_enable keys); other names are notes (sysctl-ignored): Linux has
// its own names for those tunables.
//
// # Lints
//
// [Check] runs these on nodes that loaded without errors; the ID is stable.
// One node:
//
//	carp-no-pass            warning  no pass: anyone on the segment can take the VIP
//	carp-weak-pass          warning  pass under 12 bytes or only digits: guessable offline from one advertisement
//	carp-shared-pass        warning  two groups share a pass
//	carp-preempt-off        warning  several groups without preemption: one link failure splits them across nodes
//	carp-dhcp-parent        warning  the parent's address comes from DHCP
//	pfsync-missing          warning  CARP without pfsync: failover drops every connection
//	pfsync-no-syncdev       error    pfsync with neither syncdev nor syncpeer
//	pfsync-down             warning  ifconfig_pfsync0 without up
//	pfsync-syncdev-no-addr  error    the sync interface has no address
//	pfsync-syncdev-shared   warning  pfsync on a link that carries CARP (production) traffic
//	pfsync-no-auth          warning  pfsync unauthenticated: whoever can send on the link can write states
//	pf-disabled             note     CARP but pf off: only the VIPs move
//	pf-rules-missing        error    pf_rules cannot be read
//	pf-not-linted           note     no pf.conf linter is plugged in, so pf.conf was not checked
//	pflog-without-pf        warning  pflog on, pf off
//	gateway-disabled        warning  groups on several segments without gateway_enable
//	defaultrouter-unreachable warning no interface is on the default router's subnet
//	defaultrouter-is-self   error    the default router is the node's own or virtual address
//
// A pair (groups are matched by a shared VIP, else by carpN name):
//
//	pair-group-missing      error    a group on one node only: nothing backs it up
//	pair-vhid-mismatch      error    vhids differ: both nodes become MASTER
//	pair-pass-mismatch      error    passes differ: each drops the other's advertisements, both MASTER
//	pair-vip-mismatch       error    VIP sets differ: some are not served after failover
//	pair-advbase-mismatch   warning  advbase differs; roles belong in advskew
//	pair-equal-skew         warning  same advbase and advskew: the master is whoever came up first
//	pair-roles-split        error    groups prefer different nodes: traffic enters one node and leaves by the other
//	pair-roles-hostname     warning  the node named master/primary loses every group
//	pair-preempt-mismatch   warning  preemption on one node only
//	pair-defaultrouter-mismatch warning different default routers: outbound path changes on failover
//	pair-addr-conflict      error    the same interface address on both nodes
//	pair-hostname-same      warning  same hostname
//	pair-pfsync-missing     warning  pfsync on one node only
//	pair-pfsync-unreachable error    the sync interfaces share no subnet (and no syncpeer)
//	pair-syncpeer-wrong     error    syncpeer is not an address of the peer
//	pair-pfsync-key-mismatch error   pfsync keys differ
//	pair-vmac-mismatch      warning  carp_vmac on one node only
//	pair-rules-differ       warning  the nodes' expanded pf.conf rulesets differ once the second node's
//	                                 interfaces and own addresses are read as the first's (same subnet, same
//	                                 place; the peer's address as the other node's): one finding per option,
//	                                 table or rule the other lacks, in pf's order (through a PairRulesLinter)
//
// pf.conf, through a [RulesLinter] (package config/pflint, which parses and
// expands it with package pfconf as the node sees its interfaces: carpN is
// its virtual addresses, physical interfaces the rc.conf's addresses):
//
//	pf-rules-error          error    pf.conf does not parse or expand (pfctl would not load it); no other pf.conf lint runs
//	nat-to-own-address      warning  nat, binat or nat-to translates to the node's own address on a CARP parent
//	                                 (an address there, or "(if)"): after failover the new master has the
//	                                 states but not the address, so every NATed connection breaks; use the VIP
//	rdr-to-own-address      warning  rdr on a CARP parent matches the node's own address: the service does not
//	                                 move on failover, and the backup's redirected replies return via the master
//	rdr-not-to-vip          note     rdr on a CARP parent matches any destination or a network holding the node's
//	                                 own address: the backup redirects too, and transit traffic on those ports
//	carp-blocked            error    a block rule can drop CARP advertisements (proto 112, in or out, on a
//	                                 parent) with no pass before it with quick or after it: both nodes MASTER
//	pfsync-blocked          warning  the same for pfsync (proto 240) on the sync interface: no state replication
//	pfsync-state-synced     note     pass ... proto pfsync keep state without (no-sync): pfsync syncs its own states
//	rdr-blocked             warning  a block rule can drop what a (non-pass) rdr redirects, inbound or outbound to
//	                                 the server, with no pass for it before (quick) or after it
//	pf-no-block             warning  no rule blocks anything (no anchor left to fill at run time): pf passes every
//	                                 packet, so the ruleset filters nothing and set block-policy has no effect
//	carp-keep-state         note     pass ... proto carp with (default) keep state: under pf a full state table
//	                                 then drops adverts and both nodes turn MASTER; write no state (pfcarp's
//	                                 daemon exempts CARP and pfsync from conntrack, so on Linux it is moot)
//
// The block analyses follow pf's order (first quick match, else last
// match): a block rule is reported when it could match and no pass rule
// that surely matches comes before it with quick or anywhere after it.
// Rules inside anchors are not looked at; tables are taken not to hold
// the peer (and "! <table>" to match).
package config
