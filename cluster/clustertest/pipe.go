package clustertest

import (
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// segment is the bytes of one written chunk and the time they reach the
// receiving host if the link is open then.
type segment struct {
	data []byte
	at   time.Time
}

// pipe is one direction of a connection: the bytes the writing host sent
// that the reading end has not read yet.
//
// Whether a byte is delivered is decided lazily: a segment is readable when
// it is settled, or when its link is open now and its time has come. Before
// any fault change the network settles what was delivered under the old
// state, so a later partition cannot take delivered bytes back, and bytes
// that came due while the link was blocked are readable as soon as it heals
// (TCP's retransmission).
type pipe struct {
	from, to string // host names

	segs    []segment
	off     int       // bytes of segs[0] already read
	settled int       // leading segments known to be delivered
	size    int       // unread bytes, delivered or not
	last    time.Time // delivery time of the newest segment; times never go back

	fin        bool // the writer closed gracefully after the last segment
	finAt      time.Time
	finSettled bool

	gone bool // the reading end is closed or dead: writes vanish

	seed uint64
	rng  *rand.Rand // made on the first drop decision
}

func newPipe(from, to Addr, seed int64) *pipe {
	h := fnv.New64a()
	h.Write([]byte(from.String() + ">" + to.String()))
	return &pipe{from: from.Host, to: to.Host, seed: uint64(seed) ^ h.Sum64()}
}

// readable returns how many leading segments can be read now.
func (p *pipe) readable(now time.Time, open bool) int {
	k := p.settled
	if open {
		for k < len(p.segs) && !p.segs[k].at.After(now) {
			k++
		}
	}
	return k
}

// readableBytes counts the unread bytes of the first k segments.
func (p *pipe) readableBytes(k int) int {
	b := -p.off
	if k == 0 {
		return 0
	}
	for _, s := range p.segs[:k] {
		b += len(s.data)
	}
	return b
}

// finReadable reports whether the reader is at the end of the stream.
func (p *pipe) finReadable(now time.Time, open bool) bool {
	return p.fin && len(p.segs) == 0 && (p.finSettled || open && !p.finAt.After(now))
}

// next returns when the pipe's state can change by time alone, or zero if
// only a fault change can change it.
func (p *pipe) next(open bool) time.Time {
	if !open {
		return time.Time{}
	}
	if p.settled < len(p.segs) {
		return p.segs[p.settled].at
	}
	if p.fin && !p.finSettled {
		return p.finAt
	}
	return time.Time{}
}

// settle records what reached the receiver up to now over a link that is
// open (a no-op when it is not).
func (p *pipe) settle(now time.Time, open bool) {
	if !open {
		return
	}
	p.settled = p.readable(now, true)
	if p.fin && !p.finAt.After(now) {
		p.finSettled = true
	}
}

// read copies from the first k segments into b.
func (p *pipe) read(b []byte, k int) int {
	n := 0
	for k > 0 && n < len(b) {
		s := p.segs[0]
		c := copy(b[n:], s.data[p.off:])
		n += c
		p.off += c
		if p.off == len(s.data) {
			p.segs[0] = segment{}
			p.segs = p.segs[1:]
			p.off = 0
			if p.settled > 0 {
				p.settled--
			}
			k--
		}
	}
	if len(p.segs) == 0 {
		p.segs = nil
	}
	p.size -= n
	return n
}

// push appends a copy of b, due after delay and, if the chunk is "lost",
// one retransmission timeout more.
func (p *pipe) push(b []byte, now time.Time, delay time.Duration, dropRate float64, rto time.Duration) {
	at := now.Add(delay)
	if dropRate > 0 {
		if p.rng == nil {
			p.rng = rand.New(rand.NewPCG(p.seed, p.seed>>1|1))
		}
		if p.rng.Float64() < dropRate {
			at = at.Add(rto)
		}
	}
	if at.Before(p.last) {
		at = p.last
	}
	p.last = at
	p.segs = append(p.segs, segment{data: append([]byte(nil), b...), at: at})
	p.size += len(b)
}

// closeWrite ends the stream gracefully: the FIN follows the data.
func (p *pipe) closeWrite(now time.Time, delay time.Duration) {
	at := now.Add(delay)
	if at.Before(p.last) {
		at = p.last
	}
	p.fin, p.finAt = true, at
}

// dropUnsettled discards the bytes not known to be delivered and reports
// whether there were any.
func (p *pipe) dropUnsettled() bool {
	if p.settled == len(p.segs) {
		return false
	}
	for _, s := range p.segs[p.settled:] {
		p.size -= len(s.data)
	}
	if p.settled == 0 {
		p.size, p.off = 0, 0
	}
	clear(p.segs[p.settled:])
	p.segs = p.segs[:p.settled]
	return true
}

// discard drops everything: the reader is gone.
func (p *pipe) discard() {
	p.segs, p.off, p.settled, p.size = nil, 0, 0, 0
	p.gone = true
}
