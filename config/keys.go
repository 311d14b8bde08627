package config

import "strings"

// rcKeys are the rc.conf variables pfcarp understands, besides the
// ifconfig_IF, ifconfig_IF_ipv6 and ifconfig_IF_aliasN families. doc.go
// documents each; a test keeps the two in step.
var rcKeys = []string{
	"hostname",
	"gateway_enable",
	"ipv6_gateway_enable",
	"defaultrouter",
	"ipv6_defaultrouter",
	"cloned_interfaces",
	"pf_enable",
	"pf_rules",
	"pf_flags",
	"pflog_enable",
	"pflog_logfile",
	"pflog_flags",
	"relayd_enable",
	"relayd_flags",
	"pfsync_enable",
	"pfsync_syncdev",
	"pfsync_syncpeer",
	"pfsync_ifconfig",
	"carp_preempt",
	"carp_vmac",
	"carp_up_cmd",
	"carp_down_cmd",
	"pfsync_key",
	"pfsync_key_file",
	"pfcarp_control_socket",
	"pfcarp_metrics",
	"pfcarp_peer_status",
	"pfcarp_nice",
	"pfcarp_sysctl_conf",
}

// ignoredFreeBSDKeys are common FreeBSD rc.conf variables that configure
// services and consoles pfcarp has nothing to do with. They are reported as
// warnings (so a copied rc.conf loads) and otherwise ignored.
var ignoredFreeBSDKeys = map[string]bool{
	"sshd_enable": true, "sshd_flags": true, "sendmail_enable": true,
	"sendmail_submit_enable": true, "sendmail_outbound_enable": true,
	"sendmail_msp_queue_enable": true, "ntpd_enable": true, "ntpd_flags": true,
	"ntpd_sync_on_start": true, "ntpdate_enable": true, "ntpdate_hosts": true,
	"syslogd_enable": true, "syslogd_flags": true, "inetd_enable": true,
	"keymap": true, "keyrate": true, "font8x8": true, "font8x14": true, "font8x16": true,
	"scrnmap": true, "saver": true, "moused_enable": true, "moused_type": true,
	"moused_port": true, "dumpdev": true, "clear_tmp_enable": true,
	"local_unbound_enable": true, "zfs_enable": true, "linux_enable": true,
	"usbd_enable": true, "powerd_enable": true, "named_enable": true,
	"nfs_server_enable": true, "nfs_client_enable": true, "rpcbind_enable": true,
	"mountd_enable": true, "apache22_enable": true, "mysql_enable": true,
	"cron_enable": true, "background_fsck": true, "fsck_y_enable": true,
	"devd_enable": true, "update_motd": true, "accounting_enable": true,
	"network_interfaces": true, "firewall_enable": true, "firewall_type": true,
	"natd_enable": true, "tcp_drop_synfin": true, "icmp_drop_redirect": true,
	"icmp_log_redirect": true, "log_in_vain": true, "blanktime": true,
	"kern_securelevel_enable": true, "kern_securelevel": true, "ipv6_enable": true,
	"ipv6_activate_all_interfaces": true, "rtsold_enable": true, "static_routes": true,
	"hostid_enable": true, "ifconfig_DEFAULT": true, "dhclient_program": true,
	"synchronous_dhclient": true, "sysctl_enable": true,
}

// pfcarpLooking reports whether an unknown name looks like it was meant for
// pfcarp (a typo of a key it knows): those are errors, not warnings, so a
// misspelt pf_enable cannot silently leave pf off.
func pfcarpLooking(name string) bool {
	for _, p := range []string{"pf", "carp", "ifconfig", "gateway", "defaultrouter", "cloned", "hostname", "ipv6_default", "ipv6_gateway"} {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return true
		}
	}
	return suggest(name) != ""
}

// suggest returns the known key closest to name within edit distance 2,
// or "".
func suggest(name string) string {
	best, bestD := "", 3
	for _, k := range rcKeys {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
