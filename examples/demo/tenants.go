package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// tenants are placed by package partition: rendezvous hashing over the
// committed membership, each tenant an ownership resource with the Placed
// policy, so its owner and standbys are the same on every node.
var tenants = []string{"acme.example", "globex.example", "initech.example",
	"umbrella.example", "hooli.example", "stark.example", "wayne.example",
	"tyrell.example", "cyberdyne.example", "soylent.example", "wonka.example",
	"oscorp.example"}

// placeTenants adds the tenants through one node and waits until each is
// held by its placed owner.
func (d *demo) placeTenants(ctx context.Context) error {
	d.step("placing %d tenants with partition (consistent hashing over the committed membership)", len(tenants))
	p := d.c.Node("n1").Partitioner
	for _, k := range tenants {
		if err := p.Add(ctx, k); err != nil {
			return fmt.Errorf("partition add %s: %w", k, err)
		}
	}
	pl, err := p.Placement()
	if err != nil {
		return err
	}
	per := map[cluster.NodeID][]string{}
	for _, k := range tenants {
		want, _ := pl.Owner(k)
		if err := waitFor(20*time.Second, k+" on its placed owner", func() bool {
			id, _, n := holder(d.c, p.Resource(k))
			return n == 1 && id == want
		}); err != nil {
			return err
		}
		per[want] = append(per[want], k)
	}
	for _, id := range d.c.IDs() {
		fmt.Fprintf(d.out, "    %s serves %d tenants: %s\n", id, len(per[id]), strings.Join(per[id], ", "))
	}
	return nil
}

// tenantClaims reads every tenant's committed claim.
func (d *demo) tenantClaims() map[string]ownership.Claim {
	p := d.c.Node(d.via).Partitioner
	out := map[string]ownership.Claim{}
	for _, k := range tenants {
		out[k], _ = p.Owner(k)
	}
	return out
}

// tenantsFailover checks, after the victim was killed at killedAt, that
// its tenants went to the survivors and that no other tenant moved.
func (d *demo) tenantsFailover(before map[string]ownership.Claim, killedAt time.Time) {
	p := d.c.Node(d.via).Partitioner
	var lost []string
	for _, k := range tenants {
		if before[k].Node == d.victim {
			lost = append(lost, k)
		}
	}
	err := waitFor(10*time.Second, "the victim's tenants taken over", func() bool {
		for _, k := range lost {
			if id, _, n := holder(d.c, p.Resource(k)); n != 1 || id == d.victim {
				return false
			}
		}
		return true
	})
	took := time.Since(killedAt)
	var to []string
	for _, k := range lost {
		id, _, _ := holder(d.c, p.Resource(k))
		to = append(to, k+"→"+string(id))
	}
	slices.Sort(to)
	d.rep.check(err == nil, "partition: %s's %d tenants served by survivors %v after the kill (%s)",
		d.victim, len(lost), ms(took), strings.Join(to, ", "))
	stayed := true
	for _, k := range tenants {
		if before[k].Node != d.victim {
			now, _ := p.Owner(k)
			stayed = stayed && now == before[k]
		}
	}
	d.rep.check(stayed, "partition: the other %d tenants kept their owner and epoch (only the dead node's keys move)", len(tenants)-len(lost))
}
