package dnssrv

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// rfc2782Perms returns the exact probability of every order RFC 2782's
// selection gives entries with these weights (weight 0 listed first):
// from the remaining list with weight sum T, the first entry is picked
// with probability (w+1)/(T+1) and any other with w/(T+1).
func rfc2782Perms(names []string, weights []uint64) map[string]float64 {
	out := map[string]float64{}
	var walk func(left []int, prefix []string, p float64)
	walk = func(left []int, prefix []string, p float64) {
		if len(left) == 0 {
			out[strings.Join(prefix, ",")] += p
			return
		}
		var total uint64
		for _, i := range left {
			total += weights[i]
		}
		for k, i := range left {
			num := float64(weights[i])
			if k == 0 {
				num++
			}
			rest := append(append([]int{}, left[:k]...), left[k+1:]...)
			walk(rest, append(prefix, names[i]), p*num/float64(total+1))
		}
	}
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	walk(idx, nil, 1)
	return out
}

// TestWeightedOrderChiSquare draws full orders through Resolve and checks
// their frequencies against RFC 2782's exact probabilities.
func TestWeightedOrderChiSquare(t *testing.T) {
	seed := uint64(20260101)
	if s := os.Getenv("DNSSRV_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with DNSSRV_SEED=%d)", seed, seed)
	names := []string{"z", "a", "b", "c"}
	weights := []uint64{0, 10, 30, 60}
	srv := startZone(t,
		"_sip._udp.chi.example. 60 IN SRV 5 60 5060 c.chi.example.",
		"_sip._udp.chi.example. 60 IN SRV 5 10 5060 a.chi.example.",
		"_sip._udp.chi.example. 60 IN SRV 5 0 5060 z.chi.example.",
		"_sip._udp.chi.example. 60 IN SRV 5 30 5060 b.chi.example.",
		"a.chi.example. 60 IN A 192.0.2.1",
		"b.chi.example. 60 IN A 192.0.2.2",
		"c.chi.example. 60 IN A 192.0.2.3",
		"z.chi.example. 60 IN A 192.0.2.4",
	)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) {
		c.Rand = rand.New(rand.NewPCG(seed, seed^0x5eed))
		c.Family = IPv4Only
	})
	// The answer lists c, a, z, b; the plan must put z (weight 0) first
	// and keep the rest in answer order, so expected orders use c, a, b.
	names, weights = []string{"z", "c", "a", "b"}, []uint64{0, 60, 10, 30}
	want := rfc2782Perms(names, weights)

	const draws = 120_000
	u, _ := ParseURI("sip:chi.example;transport=udp")
	got := map[string]int{}
	buf := make([]Target, 0, 4)
	for range draws {
		ts, err := r.AppendResolve(context.Background(), buf[:0], u)
		if err != nil {
			t.Fatal(err)
		}
		var key []string
		for _, tg := range ts {
			key = append(key, tg.Host[:1])
		}
		got[strings.Join(key, ",")]++
	}
	// Pool cells expected below 5 draws, as the chi-square test needs.
	var chi2, pooledExp float64
	var pooledObs, cells int
	for perm, p := range want {
		exp := p * draws
		if exp < 5 {
			pooledExp += exp
			pooledObs += got[perm]
			continue
		}
		d := float64(got[perm]) - exp
		chi2 += d * d / exp
		cells++
	}
	for perm := range got {
		if _, ok := want[perm]; !ok {
			t.Fatalf("order %s cannot happen under RFC 2782 but was drawn %d times", perm, got[perm])
		}
	}
	if pooledExp > 0 {
		d := float64(pooledObs) - pooledExp
		chi2 += d * d / math.Max(pooledExp, 1)
		cells++
	}
	df := float64(cells - 1)
	// Wilson–Hilferty approximation of the chi-square quantile at p=0.001.
	crit := df * math.Pow(1-2/(9*df)+3.090*math.Sqrt(2/(9*df)), 3)
	t.Logf("chi2 = %.2f with %v degrees of freedom (critical %.2f at p=0.001) over %d draws", chi2, df, crit, draws)
	if chi2 > crit {
		t.Fatalf("weighted order does not follow RFC 2782: chi2 %.2f > %.2f\ngot %v\nwant %v", chi2, crit, got, want)
	}
	// First position alone: P(first = entry) = (w + [entry is z]) / 101.
	for i, n := range names {
		first := 0
		for perm, c := range got {
			if strings.HasPrefix(perm, n+",") {
				first += c
			}
		}
		exp := float64(weights[i]) / 101
		if i == 0 {
			exp = 1.0 / 101
		}
		t.Logf("first=%s: %.4f (RFC 2782: %.4f)", n, float64(first)/draws, exp)
	}
}
