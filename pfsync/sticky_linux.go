package pfsync

import (
	"time"

	"github.com/pfcarp/pfcarp/nft"
)

// KernelSticky is the Engine's StickyTable over the sticky-address maps of
// pfcarp's nftables table (nft.Conn.StickyElems and friends).
type KernelSticky struct {
	NFT *nft.Conn
}

// Dump returns every binding of every sticky map with its remaining
// lifetime, rounded up to whole seconds.
func (k *KernelSticky) Dump() ([]Sticky, error) {
	els, err := k.NFT.StickyElems()
	if err != nil {
		return nil, err
	}
	out := make([]Sticky, 0, len(els))
	for _, e := range els {
		if len(e.Map) > MaxMapName {
			continue
		}
		secs := (e.Expires + time.Second - 1) / time.Second
		out = append(out, Sticky{Map: e.Map, Source: e.Source, Backend: e.Backend, Timeout: uint32(min(secs, 1<<32-1))})
	}
	return out, nil
}

// Set adds, replaces or (s.Delete) removes a binding.
func (k *KernelSticky) Set(s *Sticky) error {
	e := nft.StickyElem{Map: s.Map, Source: s.Source, Backend: s.Backend, Expires: time.Duration(s.Timeout) * time.Second}
	if s.Delete {
		return k.NFT.DeleteStickyElem(e)
	}
	return k.NFT.SetStickyElem(e)
}
