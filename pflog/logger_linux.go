package pflog

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// Config tunes a Logger. The zero value is ready to use.
type Config struct {
	// Snaplen is the snapshot length of a file the Logger creates (see
	// WriterConfig.Snaplen); the kernel is asked to copy no more than
	// needed for it.
	Snaplen int
	// QueueLen bounds packets read but not yet written (ReaderConfig).
	QueueLen int
	// NetNS, if not 0, is a file descriptor of the network namespace whose
	// NFLOG group and interfaces the Logger uses; 0 means the calling
	// thread's.
	NetNS int
	// Clock stamps packets the kernel sent without a timestamp and ages the
	// interface name cache; nil means the real clock.
	Clock clock.Clock
	// Logf reports write failures and foreign packets; nil discards.
	Logf func(format string, args ...any)
}

// Stats counts what a Logger did; counts only grow.
type Stats struct {
	ReaderStats
	Written     uint64 // records written to the file
	Foreign     uint64 // packets on the group without a pfcarp prefix, skipped
	Unusable    uint64 // packets whose payload was not IP, skipped
	WriteErrors uint64 // records lost to failed writes or a missing file
}

// Logger reads an NFLOG group and appends every packet logged by a pfcarp
// rule to a pflog file. It owns one goroutine (started by Open, stopped by
// Close) which owns the Writer.
type Logger struct {
	path   string
	cfg    Config
	clk    clock.Clock
	logf   func(string, ...any)
	reader *Reader
	names  *ifNames
	handle *netlink.Handle

	rotate chan chan error // requests served by the loop
	done   chan struct{}   // closed when the loop has exited
	wg     sync.WaitGroup
	once   sync.Once

	written, foreign, unusable, writeErrors atomic.Uint64
}

// Open opens (or creates) the pflog file at path, binds NFLOG group and
// starts logging. Errors name the file or the group.
func Open(path string, group uint16, cfg Config) (*Logger, error) {
	l := &Logger{
		path:   path,
		cfg:    cfg,
		clk:    cfg.Clock,
		logf:   cfg.Logf,
		rotate: make(chan chan error),
		done:   make(chan struct{}),
	}
	if l.clk == nil {
		l.clk = clock.Real{}
	}
	if l.logf == nil {
		l.logf = func(string, ...any) {}
	}
	w, err := OpenWriter(path, WriterConfig{Snaplen: cfg.Snaplen})
	if err != nil {
		return nil, err
	}
	if w.Recovered > 0 {
		l.logf("pflog: %s: cut a torn last record of %d bytes", path, w.Recovered)
	}
	if cfg.NetNS != 0 {
		l.handle, err = netlink.NewHandleAt(netns.NsHandle(cfg.NetNS), unix.NETLINK_ROUTE)
	} else {
		l.handle, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pflog: opening route netlink socket for interface names: %w", err), w.Close())
	}
	l.names = newIfNames(l.linkName, l.clk)
	copyRange := max(w.Snaplen()-HeaderLen, 1)
	l.reader, err = Listen(group, ReaderConfig{
		QueueLen:  cfg.QueueLen,
		CopyRange: uint16(min(copyRange, 0xffff)),
		NetNS:     cfg.NetNS,
	})
	if err != nil {
		l.handle.Close()
		return nil, errors.Join(err, w.Close())
	}
	l.wg.Add(1)
	go l.loop(w)
	return l, nil
}

func (l *Logger) linkName(ifindex uint32) (string, error) {
	link, err := l.handle.LinkByIndex(int(ifindex))
	if err != nil {
		return "", err
	}
	return link.Attrs().Name, nil
}

// loop owns w: it writes packets, flushing after each burst, and serves
// Rotate until the reader's queue is closed and drained.
func (l *Logger) loop(w *Writer) {
	defer l.wg.Done()
	defer close(l.done)
	defer func() {
		if w != nil {
			if err := w.Close(); err != nil {
				l.logf("%v", err)
			}
		}
	}()
	pkts := l.reader.Packets()
	for {
		select {
		case p, ok := <-pkts:
			if !ok {
				if err := l.reader.Err(); err != nil {
					l.logf("%v", err)
				}
				return
			}
			l.write(w, p)
			// Take the rest of the burst before flushing.
			for drained := false; !drained; {
				select {
				case p, ok := <-pkts:
					if !ok {
						drained = true
						pkts = nil
						break
					}
					l.write(w, p)
				default:
					drained = true
				}
			}
			if w != nil {
				if err := w.Flush(); err != nil {
					l.writeErrors.Add(1)
					l.logf("%v", err)
				}
			}
			if pkts == nil {
				return
			}
		case req := <-l.rotate:
			var err error
			if w != nil {
				err = w.Close()
			}
			nw, oerr := OpenWriter(l.path, WriterConfig{Snaplen: l.cfg.Snaplen})
			w = nw // nil on failure: packets are counted lost until the next Rotate
			if oerr == nil && nw.Recovered > 0 {
				l.logf("pflog: %s: cut a torn last record of %d bytes", l.path, nw.Recovered)
			}
			req <- errors.Join(err, oerr)
		}
	}
}

func (l *Logger) write(w *Writer, p Packet) {
	rec, err := p.Record(l.names.name, l.clk.Now())
	switch {
	case errors.Is(err, ErrForeignPrefix):
		if l.foreign.Add(1) == 1 {
			l.logf("pflog: skipping packets on the NFLOG group not logged by pfcarp rules: %v", err)
		}
		return
	case err != nil:
		l.unusable.Add(1)
		return
	case w == nil:
		l.writeErrors.Add(1)
		return
	}
	if err := w.Write(rec); err != nil {
		l.writeErrors.Add(1)
		l.logf("%v", err)
		return
	}
	l.written.Add(1)
}

// Rotate closes the file and opens the path again, creating a new file if
// the old one was moved away (by newsyslog or logrotate). If the path cannot
// be opened, packets are counted as WriteErrors until a later Rotate
// succeeds.
func (l *Logger) Rotate() error {
	req := make(chan error, 1)
	select {
	case l.rotate <- req:
		return <-req
	case <-l.done:
		return fmt.Errorf("pflog: %s: logger is closed", l.path)
	}
}

// Stats returns the counters so far; safe to call at any time.
func (l *Logger) Stats() Stats {
	return Stats{
		ReaderStats: l.reader.Stats(),
		Written:     l.written.Load(),
		Foreign:     l.foreign.Load(),
		Unusable:    l.unusable.Load(),
		WriteErrors: l.writeErrors.Load(),
	}
}

// Close stops reading, writes the packets already queued, closes the file
// and waits for the goroutine. Close is idempotent.
func (l *Logger) Close() error {
	var err error
	l.once.Do(func() {
		err = l.reader.Close()
		l.wg.Wait()
		l.handle.Close()
	})
	return err
}
