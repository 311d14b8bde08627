// Package pfconf is the pf.conf language as FreeBSD's and OpenBSD's pfctl
// accept it: a scanner (macros expanded the way pfctl's lexer does, lines
// joined by backslash-newline), a parser that builds an AST with positions
// (Parse), an expansion pass that resolves names and crosses lists out into
// single rules, dropping address-family mismatches as pfctl's expand_rule
// does (Expand), and a printer that writes the expanded ruleset exactly as
// "pfctl -nv" and "pfctl -nvv" print it (Ruleset.Print).
//
// Interface addresses are selected as pfctl's ifa_lookup selects them: an
// IPv6 link-local address is scoped to its interface (netdb.IfAddr.Ifname),
// a rule made from one applies on that interface only, and :network (so
// also antispoof) and :0 leave link-locals out.
//
// Parsing is pure: Parse reads only the files it is asked to include. All
// host facts (interface addresses, host names, users and groups) are asked
// of a netdb.Host by Expand, and port, protocol and ICMP names come from
// netdb's shipped tables, so the output does not depend on /etc files.
//
// Errors are collected, not fatal: Parse and Expand go on after an error,
// return what they could build and an *ErrorList whose entries print in
// pfctl's "file:line: message" form (PfctlString) or with the column
// (Error). The messages are pfctl's (CHECKS.md lists each check of
// FreeBSD's and OpenBSD's pfctl and its test); a problem shared by every
// rule a statement expands to is reported once.
//
// pfconf does not decide whether Linux can enforce a rule: constructs the
// nftables back end cannot express are parsed and printed like any other;
// refusing them is the loader's job (package compile). It never touches the
// kernel.
package pfconf
