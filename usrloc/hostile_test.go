package usrloc

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// TestHostilePeerMessages: an authenticated peer that sends garbage,
// truncated and lying messages on the usrloc channel changes nothing;
// every such message is dropped and counted, and the node keeps working.
func TestHostilePeerMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(9)
		defer nw.Close()
		ids := nodeIDs(2)
		n1 := startNode(t, nw, ids, 0, ReplicatorConfig{NoJoin: true})
		host := nw.Host("n2")
		evil, err := cluster.NewTCP(t.Context(), cluster.Config{ID: "n2", Listen: "n2:7946",
			Peers: []cluster.Peer{{ID: "n1", Addr: "n1:7946"}}, Secret: testSecret, Network: host, Now: host.Now, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer evil.Close()
		clustertest.WaitUp(t, []cluster.Transport{n1.tr, evil})
		registerN(t, n1, 0, 10, "a")
		before := digestOf(n1.st)

		good := encode(nil, &message{typ: msgUpdates, recs: []wireRec{sampleWire()}})
		bad := [][]byte{
			{},
			{wireVersion},
			{9, byte(msgUpdates), 0},
			{wireVersion, 200},
			good[:len(good)-3],
			append(append([]byte(nil), good...), 1, 2, 3),
			{wireVersion, byte(msgUpdates), 0xff, 0xff, 0xff, 0xff, 0x0f},
			{wireVersion, byte(msgDigest), 1, 2, 3, 4, 5, 6, 7, 8, 0, 1},
			{wireVersion, byte(msgSyncReq), 1, 2, 3, 4, 5, 6, 7, 8, 2, 5, 5}, // repeated bucket
		}
		for _, b := range bad {
			if err := evil.Send("n1", cluster.ChannelUsrloc, b); err != nil {
				t.Fatal(err)
			}
		}
		clustertest.Eventually(t, 2*time.Second, func() bool { return n1.rp.Stats().Malformed == uint64(len(bad)) },
			"malformed messages not all counted")
		if digestOf(n1.st) != before {
			t.Fatal("a malformed message changed the store")
		}
		// Chunks of a stream n1 never asked for, and acks of nothing.
		evil.Send("n1", cluster.ChannelUsrloc, encode(nil, &message{typ: msgSyncChunk, id: 42, seq: 1, cursor: 1, last: true, recs: []wireRec{sampleWire()}}))
		evil.Send("n1", cluster.ChannelUsrloc, encode(nil, &message{typ: msgSyncAck, id: 42, seq: 9}))
		time.Sleep(100 * time.Millisecond)
		if digestOf(n1.st) != before {
			t.Fatal("an unsolicited chunk changed the store")
		}
		registerN(t, n1, 10, 11, "a")
		if n1.st.Len() != 11 {
			t.Fatal("node broken after the hostile messages")
		}
	})
}

func TestReplicatorConfigValidate(t *testing.T) {
	for _, c := range []ReplicatorConfig{{BatchBytes: 10}, {ChunkBytes: 100}, {Window: -1}, {Window: 100, ChunkBytes: 1 << 20}, {SyncTimeout: time.Microsecond}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (ReplicatorConfig{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
