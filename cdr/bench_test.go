package cdr

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchFields is a trimmed CDR of the size a Filter typically leaves (~400 bytes).
var benchFields = map[string]any{
	"caller_id_number": "+4930123456", "destination_number": "+4940987654",
	"start_stamp": "2026-11-23 07:44:00", "answer_stamp": "2026-11-23 07:44:03", "end_stamp": "2026-11-23 07:46:45",
	"duration": 165, "billsec": 162, "hangup_cause": "NORMAL_CLEARING", "sip_hangup_disposition": "recv_bye",
	"sip_call_id": "a84b4c76e66710@pc33.example.com", "read_codec": "PCMA", "write_codec": "PCMA",
	"accountcode": "tenant-42", "context": "public", "rtp_audio_in_mos": "4.48",
}

// benchPost posts b.N records from 256 goroutines and waits until a local
// collector (a Receiver on loopback HTTP, in Raw mode like cdrcollector
// unless decode is set) has acknowledged all of them.
func benchPost(b *testing.B, noSync, decode bool) {
	var got atomic.Int64
	rcv, err := NewReceiver(ReceiverConfig{Raw: !decode}, func(context.Context, Record) error { got.Add(1); return nil })
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	p, err := New(Config{SpoolDir: b.TempDir(), Endpoints: []Endpoint{{URL: srv.URL}},
		Format: FormatNDJSON, BatchSize: 512, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const workers = 256
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := p.Post(context.Background(), Record{ID: "b" + strconv.FormatInt(i, 10), Fields: benchFields}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	posted := time.Since(start)
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got.Load() != int64(b.N) {
		b.Fatalf("collector got %d of %d", got.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(b.N)/posted.Seconds(), "durable/s")
	st := p.spool.Stats()
	b.ReportMetric(float64(b.N)/float64(max(1, st.Fsyncs)), "records/fsync")
}

// BenchmarkPost: "fsync" is the real thing; "nosync" is the same poster
// with fsync off, the baseline for the cost of durability; "fsync-decode"
// has the collector decode every record into a map.
func BenchmarkPost(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchPost(b, false, false) })
	b.Run("nosync", func(b *testing.B) { benchPost(b, true, false) })
	b.Run("fsync-decode", func(b *testing.B) { benchPost(b, false, true) })
}
