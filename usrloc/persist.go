package usrloc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PersistConfig configures a Persister. The zero value of every field but
// Path means its default.
type PersistConfig struct {
	// Path of the bbolt file; required.
	Path string
	// FlushInterval is how long changes collect before one write
	// transaction stores them all (write-behind); default 1 s. A crash
	// loses at most this much, which the cluster sync restores unless every
	// node crashed at once.
	FlushInterval time.Duration
	// Now is the wall clock the stored expiries are kept in; default
	// time.Now. After a whole-cluster restart it is the only reference left.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Persister writes every binding of a Store to a bbolt file behind the
// store's back, batched, so a restart of the whole cluster recovers the
// registrations: open it before the Replicator, which then merges what the
// cluster has (newer versions win).
type Persister struct {
	store *Store
	db    *bolt.DB
	cfg   PersistConfig

	mu      sync.Mutex
	pending map[string]*Binding // key → binding to write, nil to delete
	stats   PersistStats
	// written is when the file was last flushed before this open.
	written time.Time

	stopWatch func()
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// PersistStats counts the persister's work.
type PersistStats struct {
	Loaded, Written, Deleted, Flushes, Errors uint64
}

var (
	bucketName = []byte("bindings")
	metaName   = []byte("meta")
	writtenKey = []byte("written") // Unix ns of the last flush
)

// OpenPersister opens (or creates) the file, loads what it holds into
// store (expired bindings are dropped) and starts writing behind.
func OpenPersister(store *Store, cfg PersistConfig) (*Persister, error) {
	if cfg.Path == "" {
		return nil, errors.New("usrloc: PersistConfig.Path is required")
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.FlushInterval < 0 {
		return nil, errors.New("usrloc: negative FlushInterval")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("usrloc: open %s: %w", cfg.Path, err)
	}
	p := &Persister{store: store, db: db, cfg: cfg, pending: map[string]*Binding{}, quit: make(chan struct{})}
	if err := p.load(); err != nil {
		db.Close()
		return nil, err
	}
	p.stopWatch = store.Watch("", p.observe)
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// load merges the file's bindings into the store.
func (p *Persister) load() error {
	now := p.cfg.Now()
	var bad []string
	err := p.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaName)
		if err != nil {
			return err
		}
		if v := meta.Get(writtenKey); len(v) == 8 {
			p.written = time.Unix(0, int64(binary.LittleEndian.Uint64(v)))
		}
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			w, deadline, err := decodeStored(v)
			if err != nil {
				bad = append(bad, string(k))
				return nil
			}
			w.Remaining = time.Unix(0, deadline).Sub(now)
			if w.Remaining <= 0 {
				bad = append(bad, string(k))
				return nil
			}
			if _, err := p.store.merge(&w); err != nil {
				bad = append(bad, string(k))
				return nil
			}
			p.stats.Loaded++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("usrloc: load %s: %w", p.cfg.Path, err)
	}
	if len(bad) > 0 {
		// Expired or unreadable: drop them from the file.
		return p.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketName)
			for _, k := range bad {
				b.Delete([]byte(k))
			}
			return nil
		})
	}
	return nil
}

// storedKey names a binding in the file.
func storedKey(b *Binding) string {
	if b.Instance != "" && b.RegID != 0 {
		return b.AOR + "\x00i" + b.Instance + "\x00" + fmt.Sprint(b.RegID)
	}
	return b.AOR + "\x00c" + b.Contact
}

// observe collects a change; the latest change of a binding wins.
func (p *Persister) observe(e Event) {
	key := storedKey(&e.Binding)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case Added, Updated:
		b := e.Binding
		p.pending[key] = &b
	case Removed, Expired:
		p.pending[key] = nil
	}
}

func (p *Persister) run() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.flush()
			return
		case <-t.C:
			p.flush()
		}
	}
}

// flush writes the pending changes in one transaction.
func (p *Persister) flush() {
	p.mu.Lock()
	pending := p.pending
	p.pending = map[string]*Binding{}
	p.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	var written, deleted uint64
	err := p.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketName)
		for k, b := range pending {
			if b == nil {
				deleted++
				if err := bk.Delete([]byte(k)); err != nil {
					return err
				}
				continue
			}
			// bbolt keeps the value until the transaction ends: no reuse.
			written++
			if err := bk.Put([]byte(k), encodeStored(nil, b)); err != nil {
				return err
			}
		}
		return tx.Bucket(metaName).Put(writtenKey, binary.LittleEndian.AppendUint64(nil, uint64(p.cfg.Now().UnixNano())))
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Flushes++
	if err != nil {
		p.stats.Errors++
		p.cfg.Logger.Error("usrloc: persisting bindings", "err", err)
		return
	}
	p.stats.Written += written
	p.stats.Deleted += deleted
}

// LastWritten is when the file was last written before it was opened (zero
// for a new file): how current the loaded bindings are. Pass it as
// ReplicatorConfig.StateAsOf so a node that was down longer than the
// tombstone lifetime drops what the cluster deleted meanwhile.
func (p *Persister) LastWritten() time.Time { return p.written }

// Stats returns the counters.
func (p *Persister) Stats() PersistStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close writes what is pending, stops and closes the file. It is
// idempotent.
func (p *Persister) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.stopWatch()
		close(p.quit)
		p.wg.Wait()
		err = p.db.Close()
	})
	return err
}

// encodeStored is a record as replicated, preceded by its absolute expiry
// (Unix ns).
func encodeStored(dst []byte, b *Binding) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Expires.UnixNano()))
	e := encoder{b: dst}
	e.rec(&wireRec{AOR: b.AOR, F: fields{Contact: b.Contact, Received: b.Received, CallID: b.CallID, Instance: b.Instance,
		UserAgent: b.UserAgent, Path: b.Path, Socket: b.Socket, RegID: b.RegID, CSeq: b.CSeq, Q: b.Q, Flags: b.Flags},
		Remaining: time.Millisecond, HLC: b.Version, Node: string(b.Node)})
	return e.b
}

func decodeStored(v []byte) (wireRec, int64, error) {
	var w wireRec
	if len(v) < 8 {
		return w, 0, ErrMalformed
	}
	deadline := int64(binary.LittleEndian.Uint64(v))
	d := decoder{b: v[8:]}
	d.rec(&w)
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return w, deadline, d.err
}
