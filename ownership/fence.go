package ownership

import (
	"fmt"
	"sync"
)

// Check is the owner side of fencing: it returns the epoch to attach to an
// action on res, or ErrNotOwner when this node does not hold res now.
func Check(m Manager, res string) (Epoch, error) {
	e, ok := m.Held(res)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNotOwner, res)
	}
	return e, nil
}

// Fence is the downstream side of fencing: it remembers the largest epoch
// it accepted per resource and refuses smaller ones, so once an action of a
// new owner got through, a deposed owner's late action cannot. Equal
// epochs pass: one owner acts many times at its epoch. The zero Fence is
// ready to use and safe for concurrent use. It keeps one entry per
// resource it has seen.
type Fence struct {
	mu   sync.Mutex
	seen map[string]Epoch
}

// Admit accepts an action on res at epoch e, or returns ErrStaleEpoch.
func (f *Fence) Admit(res string, e Epoch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = make(map[string]Epoch)
	}
	if cur := f.seen[res]; e < cur {
		return fmt.Errorf("%w: %s at epoch %d, already saw %d", ErrStaleEpoch, res, e, cur)
	}
	f.seen[res] = e
	return nil
}
