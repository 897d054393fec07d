package sipha_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sipha/sipha/ownership"
)

// Every block follows one rule: act as owner of a resource only right after
// the ownership layer says this node holds it, and carry the epoch with the
// action so a downstream can refuse a deposed owner. ownership.Single is the
// one-node Manager; raftowner.Node is the same interface for a cluster.
func Example() {
	ctx := context.Background()
	m := ownership.NewSingle("n1")
	defer m.Close()
	const vip = "vip/198.51.100.10"
	if err := m.Ensure(ctx, ownership.Spec{Name: vip, Policy: ownership.Sticky}); err != nil {
		panic(err)
	}

	var downstream ownership.Fence // e.g. the switch or API that moves the address
	epoch, err := ownership.Check(m, vip)
	if err != nil {
		panic(err)
	}
	fmt.Println("n1 acts for", vip, "at epoch", epoch, "→", downstream.Admit(vip, epoch))

	// A deposed owner's late action carries an older epoch and is refused.
	err = downstream.Admit(vip, epoch-1)
	fmt.Println("stale action refused:", errors.Is(err, ownership.ErrStaleEpoch))
	// Output:
	// n1 acts for vip/198.51.100.10 at epoch 1 → <nil>
	// stale action refused: true
}
