package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// linkWatcher is the daemon's one watch on the links it cares about (the
// CARP parents and the sync interface). It never ends the daemon: when its
// subscription fails or closes it counts and logs that and subscribes
// again (the first report of a new subscription lists every link, so
// nothing is missed for longer than the retry delay).
//
// A link's return is also seen when the kernel never reported its loss:
// linkwatch reports carrier changes of most devices at most once a second,
// so a loss and return within that second reach user space as one report
// showing the link up. A report whose carrier-up count grew since the last
// one is a return too.
type linkWatcher struct {
	src   LinkSource
	names func(string) bool // which links to report
	log   *slog.Logger
	clk   clock.Clock
	// change is called, on the watcher's goroutine, for each watched
	// link's first report (first true) and for each change of its state
	// after that; returned is true when the link came back after a loss
	// (seen, or told by the carrier-up count).
	change func(name string, up, first, returned bool)

	resubscribes atomic.Uint64 // subscriptions made again after one ended
	errors       atomic.Uint64 // errors reported by the subscription
}

type linkMemo struct {
	up     bool
	ups    uint32
	hasUps bool
}

// retryDelay bounds how fast a failing subscription is made again.
const retryDelay = 100 * time.Millisecond

func (w *linkWatcher) run(ctx context.Context) {
	seen := map[string]linkMemo{}
	for first := true; ; first = false {
		if !first {
			w.resubscribes.Add(1)
			t := w.clk.NewTimer(retryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
		done := make(chan struct{})
		reports, errs, err := w.src.Subscribe(done)
		if err != nil {
			close(done)
			w.errors.Add(1)
			w.log.Warn("watching links: cannot subscribe; trying again", "err", err)
			continue
		}
		w.serve(ctx, reports, errs, seen)
		close(done)
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("watching links: subscription ended; subscribing again", "resubscribes", w.resubscribes.Load()+1)
	}
}

// serve handles one subscription until it ends or ctx is done.
func (w *linkWatcher) serve(ctx context.Context, reports <-chan LinkState, errs <-chan error, seen map[string]linkMemo) {
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			w.errors.Add(1)
			w.log.Warn("watching links", "err", err)
		case r, ok := <-reports:
			if !ok {
				return
			}
			if !w.names(r.Name) {
				continue
			}
			up := r.Up && !r.Deleted
			prev, known := seen[r.Name]
			flapped := known && r.HasUps && prev.hasUps && r.CarrierUps != prev.ups
			m := linkMemo{up: up, ups: prev.ups, hasUps: prev.hasUps}
			if r.HasUps {
				m.ups, m.hasUps = r.CarrierUps, true
			}
			seen[r.Name] = m
			switch {
			case !known:
				w.change(r.Name, up, true, false)
			case up != prev.up:
				w.change(r.Name, up, false, up)
			case up && flapped:
				w.log.Info("link lost and regained its carrier between two reports", "if", r.Name)
				w.change(r.Name, up, false, true)
			}
		}
	}
}
