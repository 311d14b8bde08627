//go:build linux

package cli

import (
	"context"
	"fmt"
	"strings"
)

// runLabFault is `pfcarp lab fault`: pull or plug a cable, kill -9 or start
// a node's daemon, cut or heal the sync link, isolate or heal a node.
func runLabFault(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "fault")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a := fs.Args()
	bad := func(msg string) error {
		fs.Usage()
		return &ExitError{Code: 2, Err: fmt.Errorf("lab fault: %s", msg)}
	}
	if len(a) < 2 {
		return bad("want NODE ACTION [IFACE]")
	}
	node, action := a[0], a[1]
	wantArgs := 2
	if action == "link-down" || action == "link-up" {
		wantArgs = 3
	}
	if len(a) != wantArgs {
		if wantArgs == 3 {
			return bad(action + " needs the interface: NODE " + action + " IFACE")
		}
		return bad(fmt.Sprintf("unexpected argument %q after %s", a[len(a)-1], action))
	}
	l, err := openLab(*dir)
	if err != nil {
		return fmt.Errorf("lab fault: %w", err)
	}
	if node == "sync" {
		switch action {
		case "cut":
			err = l.CutSync()
		case "heal":
			err = l.HealSync()
		default:
			return bad(fmt.Sprintf("sync %s: want sync cut or sync heal", action))
		}
	} else {
		switch action {
		case "link-down":
			err = l.SetCable(node, a[2], false)
		case "link-up":
			err = l.SetCable(node, a[2], true)
		case "kill":
			err = l.KillDaemon(node)
		case "start":
			err = l.StartDaemon(node)
		case "isolate":
			err = l.Isolate(node)
		case "heal":
			err = l.Heal(node)
		default:
			return bad(fmt.Sprintf("unknown action %q (link-down, link-up, kill, start, isolate, heal; or sync cut|heal)", action))
		}
	}
	if err != nil {
		return fmt.Errorf("lab fault: %w", err)
	}
	fmt.Fprintf(env.Stdout, "lab fault: %s\n", strings.Join(a, " "))
	return nil
}
