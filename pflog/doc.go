// Package pflog owns pfcarp's packet log: it turns packets that pf `log`
// rules hand to an NFLOG group into a pcap file with the BSD pflog link type
// (DLT_PFLOG, 117), so the real `tcpdump -n -e -r FILE` prints the BSD lines
// users know:
//
//	rule 3/0(match): block in on eth0: 192.0.2.7.5353 > 192.0.2.1.53: UDP, length 30
//
// The pieces, in the order a packet meets them:
//
//   - The metadata contract with the compiler (FormatPrefix, ParsePrefix): the
//     compiler emits an nftables `log group N prefix P` expression whose
//     prefix P encodes the pf rule number, anchor, reason, action, direction
//     and ridentifier. The format is documented on FormatPrefix.
//   - Reader (Linux): binds an NFLOG group over netlink
//     (github.com/mdlayher/netlink) and delivers Packets (prefix, in/out
//     ifindex, timestamp, payload) on a bounded channel, counting drops.
//   - Packet.Record: prefix -> Meta, ifindex -> interface name (resolved at
//     read time through a small cache), payload -> Record.
//   - Header: the pflog header as FreeBSD lays it out (if_pflog.h) and
//     tcpdump's print-pflog.c reads it.
//   - Writer: appends Records to a pcap file, creating it or checking an
//     existing one (pcap magic, DLT_PFLOG) and cutting off a torn last record
//     so the file stays readable.
//   - Logger (Linux): Reader + Writer in one goroutine, what the daemon runs
//     for pflog_logfile=.
//
// On Linux there is no pflog0 interface, so `tcpdump -i pflog0` is not
// available: the file is the interface. Follow it live with
// `tail -c +1 -f FILE | tcpdump -l -n -e -r -` instead (the Logger flushes
// after every burst of packets).
//
// Timestamps are the kernel's when NFLOG sends one (packets that arrived on
// an interface); locally generated packets carry none and are stamped when
// pfcarp reads them, at most the Reader's FlushTimeout (10ms) late.
//
// pflog does not decide which rules log or how a pf rule maps to nftables
// (package compile does), does not install rules, and does not rotate files
// by size or age: Logger.Rotate reopens the path on demand, the way pflogd
// reopens its file on SIGHUP after newsyslog moved it.
package pflog
