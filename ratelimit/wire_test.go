package ratelimit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func encodeTest(flags byte, inc, tick uint64, acks []ackEntry, pipes map[string]float64, limit int) [][]byte {
	var e encoder
	var out [][]byte
	e.start(flags, inc, tick, acks)
	for name, rate := range pipes {
		if e.full(name, limit) {
			out = append(out, bytes.Clone(e.buf))
			e.next()
		}
		e.add(name, rate)
	}
	return append(out, bytes.Clone(e.buf))
}

func TestWireRoundTrip(t *testing.T) {
	acks := []ackEntry{{id: []byte("n2"), inc: 7, tick: 99}, {id: []byte("n3"), inc: 1 << 60, tick: 1}}
	pipes := map[string]float64{}
	for i := 0; i < 500; i++ {
		pipes["tenant-"+strings.Repeat("x", i%40)+string(rune('a'+i%26))+string(rune('0'+i%10))] = float64(i) * 1.5
	}
	msgs := encodeTest(flagLeaving, 42, 1234, acks, pipes, 1024)
	if len(msgs) < 2 {
		t.Fatalf("%d pipes fit in one 1 KiB message", len(pipes))
	}
	got := map[string]float64{}
	var m demandMsg
	for _, b := range msgs {
		if len(b) > 1024 {
			t.Fatalf("message of %d bytes, limit 1024", len(b))
		}
		if err := m.decode(b); err != nil {
			t.Fatal(err)
		}
		if m.flags != flagLeaving || m.inc != 42 || m.tick != 1234 || len(m.acks) != 2 ||
			string(m.acks[1].id) != "n3" || m.acks[1].inc != 1<<60 || m.acks[0].tick != 99 {
			t.Fatalf("header decoded as %+v", m)
		}
		for _, p := range m.pipes {
			got[string(p.name)] = float64(p.milli) / milli
		}
	}
	if len(got) != len(pipes) {
		t.Fatalf("decoded %d pipes, sent %d", len(got), len(pipes))
	}
	for name, rate := range pipes {
		if got[name] != rate {
			t.Fatalf("pipe %q: %v, sent %v", name, got[name], rate)
		}
	}
}

func TestWireRejects(t *testing.T) {
	good := encodeTest(0, 1, 5, []ackEntry{{id: []byte("n2"), inc: 1, tick: 3}}, map[string]float64{"t": 2}, 4096)[0]
	cases := map[string][]byte{
		"empty":       {},
		"version 2":   append([]byte{2}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"round 0":     encodeTest(0, 1, 0, nil, nil, 4096)[0],
		"many acks":   {1, 0, 1, 1, 65},
		"long id":     {1, 0, 1, 1, 1, 0xff, 0x01},
		"empty pipe":  {1, 0, 1, 1, 0, 0, 5},
		"overlong":    {1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge demand": {1, 0, 1, 1, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	}
	var m demandMsg
	if err := m.decode(good); err != nil {
		t.Fatalf("good message: %v", err)
	}
	for name, b := range cases {
		if err := m.decode(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
}

// FuzzDemandMessage: the decoder never panics, and whatever it accepts
// encodes back to a message that decodes to the same values.
func FuzzDemandMessage(f *testing.F) {
	f.Add(encodeTest(0, 1, 5, []ackEntry{{id: []byte("n2"), inc: 1, tick: 3}}, map[string]float64{"t": 2, "u": 0.001}, 4096)[0])
	f.Add(encodeTest(flagLeaving, 1<<63, 1, nil, nil, 4096)[0])
	f.Add([]byte{1, 0, 1, 1, 0, 1, 'a', 5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m demandMsg
		if err := m.decode(b); err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		var e encoder
		e.start(m.flags, m.inc, m.tick, m.acks)
		for _, p := range m.pipes {
			e.add(string(p.name), float64(p.milli)/milli)
		}
		var m2 demandMsg
		if err := m2.decode(e.buf); err != nil {
			t.Fatalf("re-encoded message rejected: %v", err)
		}
		if m2.flags != m.flags || m2.inc != m.inc || m2.tick != m.tick || len(m2.acks) != len(m.acks) || len(m2.pipes) != len(m.pipes) {
			t.Fatalf("round trip changed the header: %+v vs %+v", m, m2)
		}
		for i := range m.pipes {
			if !bytes.Equal(m.pipes[i].name, m2.pipes[i].name) || m.pipes[i].milli != m2.pipes[i].milli {
				t.Fatalf("pipe %d changed: %q=%d vs %q=%d", i, m.pipes[i].name, m.pipes[i].milli, m2.pipes[i].name, m2.pipes[i].milli)
			}
		}
		for i := range m.acks {
			if !bytes.Equal(m.acks[i].id, m2.acks[i].id) || m.acks[i].inc != m2.acks[i].inc || m.acks[i].tick != m2.acks[i].tick {
				t.Fatalf("ack %d changed", i)
			}
		}
	})
}
