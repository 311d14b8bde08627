// Command gennetdb turns netdb's data files (data/services, data/protocols)
// into the Go tables of netdb/tables_gen.go. It is run by `go generate` in
// package netdb; it does nothing else and touches no other file.
//
// Every malformed line is reported as file:line: message and the run fails;
// nothing is written then.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	services := flag.String("services", "data/services", "services data files, comma-separated; earlier files win")
	protocols := flag.String("protocols", "data/protocols", "protocols data file")
	out := flag.String("o", "tables_gen.go", "output Go file")
	flag.Parse()
	if err := run(*services, *protocols, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gennetdb:", err)
		os.Exit(1)
	}
}

func run(servicesPaths, protocolsPath, outPath string) error {
	// The services files are read as one, in order: a name or a port
	// keeps its first entry, so a later file only adds what earlier ones
	// lack.
	var svcs []service
	for _, servicesPath := range strings.Split(servicesPaths, ",") {
		sf, err := os.Open(servicesPath)
		if err != nil {
			return err
		}
		s, err := parseServices(servicesPath, sf)
		_ = sf.Close() // read only: nothing to lose
		if err != nil {
			return err
		}
		svcs = append(svcs, s...)
	}
	pf, err := os.Open(protocolsPath)
	if err != nil {
		return err
	}
	defer func() { _ = pf.Close() }() // read only: nothing to lose
	protos, err := parseProtocols(protocolsPath, pf)
	if err != nil {
		return err
	}
	src, err := generate(svcs, protos)
	if err != nil {
		return err
	}
	return os.WriteFile(outPath, src, 0o644)
}

// service is one line of data/services.
type service struct {
	name    string
	port    uint16
	proto   string // "tcp" or "udp"
	aliases []string
}

// protocol is one line of data/protocols.
type protocol struct {
	name    string
	number  uint8
	aliases []string
}

// errorList collects file:line errors.
type errorList []string

func (e errorList) err() error {
	if len(e) == 0 {
		return nil
	}
	return errors.New(strings.Join(e, "\n"))
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '"' || r == '\\' || r == '#' {
			return false
		}
	}
	return true
}

func parseServices(file string, r io.Reader) ([]service, error) {
	var out []service
	var errs errorList
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
		}
		if len(f) < 2 {
			bad("want \"name port/proto [alias ...]\", got %q", sc.Text())
			continue
		}
		portStr, proto, ok := strings.Cut(f[1], "/")
		if !ok || (proto != "tcp" && proto != "udp") {
			bad("want port/tcp or port/udp, got %q", f[1])
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			bad("bad port %q: want 0..65535", portStr)
			continue
		}
		s := service{name: f[0], port: uint16(port), proto: proto, aliases: f[2:]}
		for _, n := range append([]string{s.name}, s.aliases...) {
			if !validName(n) {
				bad("bad service name %q", n)
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, errs.err()
}

func parseProtocols(file string, r io.Reader) ([]protocol, error) {
	var out []protocol
	var errs errorList
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
		}
		if len(f) < 2 {
			bad("want \"name number [alias ...]\", got %q", sc.Text())
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			bad("bad protocol number %q: want 0..255", f[1])
			continue
		}
		p := protocol{name: f[0], number: uint8(n), aliases: f[2:]}
		for _, nm := range append([]string{p.name}, p.aliases...) {
			if !validName(nm) {
				bad("bad protocol name %q", nm)
			}
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, errs.err()
}

// generate renders the tables. Lookups by name keep the first entry in file
// order for each (name, proto), as the C library's linear scan does; lookups
// by number keep the first entry for each (port, proto) or protocol number.
func generate(svcs []service, protos []protocol) ([]byte, error) {
	type nameKey struct{ name, proto string }
	type portKey struct {
		port  uint16
		proto string
	}
	byName := map[nameKey]uint16{}
	var nameKeys []nameKey
	byPort := map[portKey]string{}
	var portKeys []portKey
	for _, s := range svcs {
		for _, n := range append([]string{s.name}, s.aliases...) {
			k := nameKey{n, s.proto}
			if _, dup := byName[k]; !dup {
				byName[k] = s.port
				nameKeys = append(nameKeys, k)
			}
		}
		pk := portKey{s.port, s.proto}
		if _, dup := byPort[pk]; !dup {
			byPort[pk] = s.name
			portKeys = append(portKeys, pk)
		}
	}
	sort.Slice(nameKeys, func(i, j int) bool {
		a, b := nameKeys[i], nameKeys[j]
		if a.name != b.name {
			return a.name < b.name
		}
		return a.proto < b.proto
	})
	sort.Slice(portKeys, func(i, j int) bool {
		a, b := portKeys[i], portKeys[j]
		if a.proto != b.proto {
			return a.proto < b.proto
		}
		return a.port < b.port
	})

	protoByName := map[string]uint8{}
	var protoNames []string
	var protoNum [256]string
	for _, p := range protos {
		for _, n := range append([]string{p.name}, p.aliases...) {
			if _, dup := protoByName[n]; !dup {
				protoByName[n] = p.number
				protoNames = append(protoNames, n)
			}
		}
		if protoNum[p.number] == "" {
			protoNum[p.number] = p.name
		}
	}
	sort.Strings(protoNames)

	protoConst := map[string]string{"tcp": "protoTCP", "udp": "protoUDP"}
	var b bytes.Buffer
	b.WriteString("// Code generated by gennetdb from data/services and data/protocols; DO NOT EDIT.\n\n")
	b.WriteString("package netdb\n\n")
	fmt.Fprintf(&b, "// serviceNames holds every service name and alias, sorted by name then\n// protocol, with the port of its first entry.\nvar serviceNames = [%d]serviceName{\n", len(nameKeys))
	for _, k := range nameKeys {
		fmt.Fprintf(&b, "\t{%q, %d, %s},\n", k.name, byName[k], protoConst[k.proto])
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "// servicePorts holds the primary name of every named port, sorted by\n// protocol then port.\nvar servicePorts = [%d]servicePort{\n", len(portKeys))
	for _, k := range portKeys {
		fmt.Fprintf(&b, "\t{%d, %s, %q},\n", k.port, protoConst[k.proto], byPort[k])
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "// protocolNames holds every protocol name and alias, sorted.\nvar protocolNames = [%d]protocolName{\n", len(protoNames))
	for _, n := range protoNames {
		fmt.Fprintf(&b, "\t{%q, %d},\n", n, protoByName[n])
	}
	b.WriteString("}\n\n")
	b.WriteString("// protocolByNumber holds the primary name of each protocol number (\"\" if none).\nvar protocolByNumber = [256]string{\n")
	for n, name := range protoNum {
		if name != "" {
			fmt.Fprintf(&b, "\t%d: %q,\n", n, name)
		}
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}
