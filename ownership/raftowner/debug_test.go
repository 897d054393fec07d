package raftowner

import "fmt"

func (c *testCluster) dump() string {
	s := ""
	for _, id := range c.ids {
		n := c.nodes[id].node
		if n == nil {
			s += fmt.Sprintf("%s: down\n", id)
			continue
		}
		n.mu.Lock()
		valid := n.leaseValidLocked()
		cur, next := n.lease.cur, n.lease.next
		n.mu.Unlock()
		s += fmt.Sprintf("%s: state=%v leader=%s applied=%d lease valid=%v cur=%v next=%v now=%v\n", id, n.raft.State(), n.Leader(), n.applied(), valid, cur, next, n.cfg.Now())
		n.fsm.view(func(st *state) {
			for _, m := range st.sortedMembers() {
				s += fmt.Sprintf("   member %+v\n", m)
			}
			for _, r := range st.sortedResources() {
				s += fmt.Sprintf("   res %+v\n", *r)
			}
		})
	}
	return s
}

var dumpers = map[any]*testCluster{}
