package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseServicesErrors(t *testing.T) {
	in := "ok 1/tcp\nbad\nx 70000/tcp\ny 5/ddp\nz 6/udp al\"ias\n"
	_, err := parseServices("svc", strings.NewReader(in))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"svc:2:", "svc:3: bad port", "svc:4: want port/tcp", "svc:5: bad service name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestParseProtocolsErrors(t *testing.T) {
	_, err := parseProtocols("p", strings.NewReader("ip 0 IP\ndivert 258\n"))
	if err == nil || !strings.Contains(err.Error(), "p:2: bad protocol number") {
		t.Fatalf("err = %v", err)
	}
}

func TestGenerateFirstEntryWins(t *testing.T) {
	svcs, err := parseServices("s", strings.NewReader("a 10/tcp b\nc 10/tcp\na 20/tcp\nb 30/udp\n"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := generate(svcs, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, want := range []string{`{"a", 10, protoTCP}`, `{"b", 10, protoTCP}`, `{"b", 30, protoUDP}`, `{10, protoTCP, "a"}`} {
		if !strings.Contains(s, want) {
			t.Errorf("generated source lacks %s:\n%s", want, s)
		}
	}
	for _, notWant := range []string{`{"a", 20, protoTCP}`, `{10, protoTCP, "c"}`} {
		if strings.Contains(s, notWant) {
			t.Errorf("generated source has %s", notWant)
		}
	}
}

// TestGeneratedUpToDate fails when data/ changed without `go generate`.
func TestGeneratedUpToDate(t *testing.T) {
	// The files and order of netdb/gen.go's go:generate line.
	var svcs []service
	for _, name := range []string{"services", "services.freebsd12", "services.openbsd"} {
		sf, err := os.Open("../../data/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseServices(name, sf)
		sf.Close()
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, s...)
	}
	pf, err := os.Open("../../data/protocols")
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	protos, err := parseProtocols("protocols", pf)
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(svcs, protos)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../tables_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("netdb/tables_gen.go is stale: run go generate ./netdb")
	}
}
