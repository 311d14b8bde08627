package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// HTTPClient returns a client whose connections start inside node, from
// source address src (the zero Addr lets the kernel choose). Connections
// are not kept alive, so every request is a new TCP connection (a new
// state on the balancer) and the client leaves no goroutines behind.
func (l *Lab) HTTPClient(node string, src netip.Addr) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.DialFrom(ctx, node, src, network, addr)
		},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Get fetches url from node (source src) and returns the body; a status
// other than 200 is an error.
func (l *Lab) Get(ctx context.Context, node string, src netip.Addr, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := l.HTTPClient(node, src).Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // read below; a close error loses nothing
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// VerifyBytes fetches /bytes/n from url's server (url is "http://host[:port]")
// from node and checks the content.
func (l *Lab) VerifyBytes(ctx context.Context, node string, src netip.Addr, url string, n int64) error {
	full := fmt.Sprintf("%s/bytes/%d", strings.TrimSuffix(url, "/"), n)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return err
	}
	c := l.HTTPClient(node, src)
	c.Timeout = 0 // large bodies: the context bounds the transfer
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // VerifyContent reads it whole
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", full, resp.Status)
	}
	if err := VerifyContent(resp.Body, n); err != nil {
		return fmt.Errorf("GET %s: %w", full, err)
	}
	return nil
}
