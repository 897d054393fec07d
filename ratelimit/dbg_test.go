package ratelimit_test
import ("testing";"time")
func TestDbgTCP(t *testing.T) {
	nodes := loopbackCluster(t, tenantConfig(), 3)
	L := testLimit
	ld := startLoad("tenant-a", nodes, 1.4*L, 0.4*L, 0.2*L)
	defer ld.stop()
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		var s []any
		for _, n := range nodes { p, _ := n.rl.Pipe("tenant-a"); st := n.rl.Stats(); s = append(s, int(p.Share), int(p.Demand), st.PeersInContact, st.Quorum) }
		t.Log(s...)
	}
}
