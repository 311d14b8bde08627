package lab

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// demoRdr shows the seed's pf.conf at work on the MASTER: each client
// address fetches the external VIP (rdr ... round-robin sticky-address),
// gets one of the servers, and keeps it on new connections; then lb1's
// `pfctl -s states` lists the redirect states as the seed's author saw them.
func demoRdr(ctx context.Context, d *Demo) error {
	p := d.Lab.Plan()
	ext, _ := p.Segment(SegExternal)
	url := fmt.Sprintf("http://%s/", ext.VIP)
	seen := map[string]bool{}
	for _, src := range p.ClientAddrs() {
		var first string
		for i := 0; i < 5; i++ {
			body, err := d.Lab.Get(ctx, "client", src, url)
			if err != nil {
				return fmt.Errorf("from %s: %w", src, err)
			}
			body = strings.TrimSpace(body)
			if i == 0 {
				first = body
			} else if body != first {
				return fmt.Errorf("from %s: request %d answered %q after %q: not sticky", src, i+1, body, first)
			}
		}
		seen[first] = true
		fmt.Fprintf(d.Out, "    %-15s -> %s: %q on 5 new connections (sticky-address)\n", src, url, first)
	}
	if len(seen) < 2 && len(p.Servers()) > 1 {
		return fmt.Errorf("round-robin: all clients got the same server")
	}
	return demoPfctl(ctx, d, "lb1", "-s", "states")
}

// demoPfctl prints `pfcarp pfctl ARGS` as run on node: the TCP states that
// went through an rdr (pf prints them as "server <- VIP <- client").
func demoPfctl(ctx context.Context, d *Demo, node string, args ...string) error {
	cmd, err := d.Lab.Command(ctx, node, append([]string{d.Lab.st.Bin, "pfctl"}, args...)...)
	if err != nil {
		return err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := d.Lab.Run(node, cmd); err != nil {
		return fmt.Errorf("%s: pfctl %s: %v: %s", node, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	fmt.Fprintf(d.Out, "    %s# pfctl %s   (the redirect states)\n", node, strings.Join(args, " "))
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, " tcp ") && strings.Contains(line, " <- ") {
			fmt.Fprintf(d.Out, "    %s\n", strings.TrimRight(line, " "))
		}
	}
	return nil
}
