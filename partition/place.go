package partition

import (
	"slices"
	"strings"

	"github.com/sipha/sipha/cluster"
)

// placementCache keeps the last placement built, reused while the
// membership and the committed key set stay the same.
type placementCache struct {
	members []Member
	keysVer uint64
	keyed   bool // built over the committed keys
	p       *Placement
}

// Placement returns the placement of the committed keys over the committed
// membership, rebuilt only when either changed since the last call. Every
// node that has applied the same membership and keys gets the same
// placement (compare [Placement.Fingerprint]). It describes where keys
// belong; the committed owner of a registered key, which is what routing
// follows, is [Partitioner.Owner].
func (p *Partitioner) Placement() (*Placement, error) {
	return p.placement(p.src.Members(), true)
}

func (p *Partitioner) placement(ms []Member, keyed bool) (*Placement, error) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	p.mu.Lock()
	c := p.cache
	if c.p != nil && slices.Equal(c.members, ms) && (!keyed || c.keyed && c.keysVer == p.keysVer) {
		p.mu.Unlock()
		return c.p, nil
	}
	var keys []string
	ver := p.keysVer
	if keyed {
		keys = make([]string, 0, len(p.keys))
		for k := range p.keys {
			keys = append(keys, k)
		}
	}
	p.mu.Unlock()
	pl, err := Build(ms, keys, p.cfg.Options)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.cache = placementCache{members: ms, keysVer: ver, keyed: keyed, p: pl}
	p.mu.Unlock()
	return pl, nil
}

// place is the ownership.PlaceFunc: members are the committed IDs that may
// own resources; roles and weights come from the member source. Down is
// dropped since the ownership layer itself skips failed candidates.
//
// Without bounded loads a key's ranking does not depend on the other keys,
// so the placement is built without them. With bounded loads it is built
// over the committed keys; a key not committed yet gets its plain ranking
// until the ownership layer re-places it after the commit.
func (p *Partitioner) place(resource string, members []cluster.NodeID) []cluster.NodeID {
	key := strings.TrimPrefix(resource, p.prefix)
	attrs := map[cluster.NodeID]Member{}
	for _, m := range p.src.Members() {
		attrs[m.ID] = m
	}
	ms := make([]Member, 0, len(members))
	for _, id := range members {
		m, ok := attrs[id]
		if !ok {
			m = Member{ID: id}
		}
		m.Down = false
		ms = append(ms, m)
	}
	keyed := p.cfg.Options.LoadFactor != 0
	if keyed {
		p.mu.Lock()
		_, keyed = p.keys[key]
		p.mu.Unlock()
	}
	pl, err := p.placement(ms, keyed)
	if err != nil {
		p.cfg.Logger.Warn("partition: cannot place", "resource", resource, "err", err)
		return nil
	}
	return pl.Rank(key)
}
