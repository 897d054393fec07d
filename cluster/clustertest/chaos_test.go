package clustertest

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestChaosStreamsStayWhole streams bytes both ways between every pair of
// three hosts for a minute of fake time while a seeded chaos loop partitions,
// cuts, blackholes, heals and changes delays and the drop rate. Every stream
// must arrive whole: no byte lost, duplicated or reordered, and the stats
// must count exactly what was read.
//
// The chaos schedule and each writer's sizes and pauses replay from the
// seed; how goroutines interleave at one fake instant may still differ.
func TestChaosStreamsStayWhole(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("", func(t *testing.T) {
			t.Logf("chaos seed %d", seed)
			synctest.Test(t, func(t *testing.T) { chaos(t, seed) })
		})
	}
}

// streamByte is the k-th byte of every test stream: a sequence that exposes
// a lost, repeated or swapped chunk.
func streamByte(k int) byte { return byte(k % 251) }

type streamEnd struct {
	from, to string
	conn     net.Conn
	written  int // set by the writer before it half-closes
}

func chaos(t *testing.T, seed uint64) {
	const runFor = time.Minute
	hosts := []string{"a", "b", "c"}
	n := newNet(t, Config{Seed: int64(seed), BufferSize: 32 << 10})
	ctx := context.Background()
	for _, h := range hosts {
		l, err := n.Host(h).Listen(ctx, h+":1")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	var ends []*streamEnd
	for _, from := range hosts {
		for _, to := range hosts {
			if from == to {
				continue
			}
			c, s := connect(t, n, from, to, 2+len(ends))
			ends = append(ends, &streamEnd{from, to, c, 0}, &streamEnd{to, from, s, 0})
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	read := make([]int, len(ends))
	for i, e := range ends {
		wg.Go(func() { // writer
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			buf := make([]byte, 2000)
			for time.Since(start) < runFor {
				m := 1 + r.IntN(len(buf))
				for j := range m {
					buf[j] = streamByte(e.written + j)
				}
				if _, err := e.conn.Write(buf[:m]); err != nil {
					t.Errorf("write %s->%s: %v", e.from, e.to, err)
					return
				}
				e.written += m
				time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
			}
			e.conn.(interface{ CloseWrite() error }).CloseWrite()
		})
		peer := ends[i^1] // the other end of the same connection reads
		wg.Go(func() {
			buf := make([]byte, 3000)
			for {
				m, err := peer.conn.Read(buf)
				for j := range m {
					if buf[j] != streamByte(read[i]+j) {
						t.Errorf("stream %s->%s: byte %d is %d, want %d", e.from, e.to, read[i]+j, buf[j], streamByte(read[i]+j))
						return
					}
				}
				read[i] += m
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					t.Errorf("read %s->%s: %v", e.from, e.to, err)
					return
				}
			}
		})
	}

	r := rand.New(rand.NewPCG(seed, 1<<32))
	healedHeld := 0 // heals that found bytes pending (held or in flight)
	for time.Since(start) < runFor {
		time.Sleep(time.Duration(r.IntN(3000)) * time.Millisecond)
		a, b := hosts[r.IntN(3)], hosts[r.IntN(3)]
		switch r.IntN(7) {
		case 0:
			n.Partition([]string{a}, []string{b})
		case 1:
			n.Cut(a, b)
		case 2:
			n.Blackhole(a)
		case 3, 4:
			for _, b := range n.Stats().Pending {
				if b > 0 {
					healedHeld++
					break
				}
			}
			n.Heal()
		case 5:
			n.SetLinkDelay(a, b, time.Duration(r.IntN(300))*time.Millisecond)
		case 6:
			n.SetDropRate(r.Float64() * 0.3)
		}
	}
	n.Heal()
	wg.Wait()
	if healedHeld == 0 {
		t.Errorf("no Heal found bytes pending: the chaos did not exercise holding")
	}
	t.Logf("%d heals found bytes pending", healedHeld)

	st := n.Stats()
	perLink := make(map[Link]int64)
	for i, e := range ends {
		if read[i] != e.written {
			t.Errorf("stream %s->%s: read %d of %d bytes", e.from, e.to, read[i], e.written)
		}
		perLink[Link{e.from, e.to}] += int64(read[i])
	}
	for l, b := range perLink {
		if st.Delivered[l] != b || st.Pending[l] != 0 {
			t.Errorf("stats %s->%s: delivered %d pending %d; want %d and 0", l.From, l.To, st.Delivered[l], st.Pending[l], b)
		}
	}
}
