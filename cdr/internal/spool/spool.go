// Package spool is the durable FIFO behind cdr.Poster: append-only segment
// files of checksummed frames, a group-committing writer (many concurrent
// appends share one fsync), a single reader that acknowledges by position,
// and a cursor file that remembers how far delivery got.
//
// Crash safety rests on three rules: an append is acknowledged only after
// the segment's bytes and (for a new segment) its directory entry are
// fsynced; the reader never reads past what was fsynced by this process;
// and a damaged frame (a torn last write, bit rot) is skipped by scanning
// for the next frame whose magic and checksum are good, so it never hides
// the frames after it. Losing the cursor only causes re-delivery.
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipha/sipha/cdr/internal/vfs"
)

// Errors returned by Append.
var (
	ErrFull   = errors.New("spool: full")
	ErrClosed = errors.New("spool: closed")
)

const (
	segSuffix  = ".seg"
	cursorName = "cursor"
	cursorTmp  = "cursor.tmp"
	maxBatch   = 4096
)

// Options configure a Spool. FS, Dir, SegmentBytes, MaxBytes and
// MaxRecordBytes are required; the cdr package fills in its defaults.
type Options struct {
	FS             vfs.FS
	Dir            string
	SegmentBytes   int64
	MaxBytes       int64
	MaxRecordBytes int
	// Block makes Append wait for space when the spool is full instead of
	// failing with ErrFull.
	Block bool
	// NoSync skips every fsync. Only for measuring what durability costs.
	NoSync bool
	// CursorEvery bounds how often an acknowledgement rewrites the cursor
	// file; acknowledgements in between are re-delivered after a crash.
	CursorEvery time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

type segment struct {
	id      uint64
	size    int64 // bytes written (counted against MaxBytes)
	durable int64 // bytes the reader may read
	sealed  bool  // no more appends; deletable once read past
}

type appendReq struct {
	frame []byte
	done  chan error
}

// Stats is a snapshot of counters.
type Stats struct {
	Segments     int
	Bytes        int64 // on disk, including acknowledged bytes of the oldest segment
	Appended     uint64
	Fsyncs       uint64
	SkippedBytes uint64 // damaged bytes skipped while reading
	Rejected     uint64 // appends refused with ErrFull
}

// Spool is a durable FIFO of entries. Append is safe for concurrent use;
// Peek, Ack and FlushCursor must be called from one goroutine at a time.
type Spool struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	segs     []*segment
	active   *segment
	cursor   Pos
	total    int64 // bytes on disk plus bytes reserved by appends in flight
	reserved int64
	changed  chan struct{} // closed and replaced on every state change
	closed   bool
	stats    Stats

	// Owned by the writer goroutine.
	activeF vfs.File
	nextID  uint64

	// Owned by the reader (Peek/Ack).
	rd          segReader
	cursorMu    sync.Mutex
	cursorDirty bool
	cursorSaved time.Time

	lock      io.Closer
	reqs      chan *appendReq
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Open opens or creates the spool in o.Dir, replaying what an earlier
// process left there, and starts its writer.
func Open(o Options) (*Spool, error) {
	if o.FS == nil || o.Dir == "" || o.SegmentBytes <= 0 || o.MaxBytes <= 0 || o.MaxRecordBytes <= 0 {
		return nil, errors.New("spool: incomplete options")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{o: o, log: o.Logger, changed: make(chan struct{}),
		reqs: make(chan *appendReq), quit: make(chan struct{}), nextID: 1}
	s.rd.s = s
	if err := o.FS.MkdirAll(o.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := o.FS.Lock(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.lock = lock
	names, err := o.FS.ReadDir(o.Dir)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, name := range names {
		id, ok := parseSegName(name)
		if !ok {
			continue
		}
		size, err := s.fileSize(s.segPath(id))
		if err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.segs = append(s.segs, &segment{id: id, size: size, durable: size, sealed: true})
		s.total += size
		s.nextID = id + 1
	}
	s.cursor = s.loadCursor()
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

func (s *Spool) fileSize(path string) (int64, error) {
	f, err := s.o.FS.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Size()
}

func (s *Spool) segPath(id uint64) string {
	return filepath.Join(s.o.Dir, fmt.Sprintf("%020d%s", id, segSuffix))
}

func parseSegName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segSuffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return id, err == nil && id > 0
}

// broadcastLocked wakes everyone waiting on Changed. s.mu must be held.
func (s *Spool) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change: an append committed,
// an acknowledgement, space freed, or Close.
func (s *Spool) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Append stores one entry and returns once it is durable. On ErrFull
// nothing was stored. If ctx ends while the entry is being written, the
// entry may still be stored; retrying with the same ID is then safe.
func (s *Spool) Append(ctx context.Context, id string, t time.Time, body []byte) error {
	err := s.append(ctx, id, t, body, s.o.Block)
	if errors.Is(err, ErrFull) {
		s.mu.Lock()
		s.stats.Rejected++
		s.mu.Unlock()
	}
	return err
}

// Requeue appends an entry taken from the head again, for the reader to
// move it to the tail. It never waits for space, whatever Block says: the
// reader is the one who frees it.
func (s *Spool) Requeue(ctx context.Context, id string, t time.Time, body []byte) error {
	return s.append(ctx, id, t, body, false)
}

func (s *Spool) append(ctx context.Context, id string, t time.Time, body []byte, block bool) error {
	payload := EncodeEntry(id, t, body)
	if len(payload) > s.o.MaxRecordBytes {
		return fmt.Errorf("%w: entry of %d bytes > %d", ErrTooLarge, len(payload), s.o.MaxRecordBytes)
	}
	frame := AppendFrame(make([]byte, 0, headerSize+len(payload)), payload)
	need := int64(len(frame))
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.total+need <= s.o.MaxBytes {
			s.total += need
			s.reserved += need
			s.mu.Unlock()
			break
		}
		if !block {
			s.mu.Unlock()
			return fmt.Errorf("%w: %d of %d bytes used", ErrFull, s.total, s.o.MaxBytes)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	req := &appendReq{frame: frame, done: make(chan error, 1)}
	select {
	case s.reqs <- req:
	case <-s.quit:
		s.release(need)
		return ErrClosed
	case <-ctx.Done():
		s.release(need)
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Spool) release(n int64) {
	s.mu.Lock()
	s.total -= n
	s.reserved -= n
	s.broadcastLocked()
	s.mu.Unlock()
}

// writer is the group commit loop: it takes every append waiting at the
// moment, writes them with one write and one fsync, and answers them all.
func (s *Spool) writer() {
	defer s.wg.Done()
	var batch []*appendReq
	var buf []byte
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch[:0], r)
		case <-s.quit:
			if s.activeF != nil {
				_ = s.activeF.Close()
			}
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		buf = buf[:0]
		for _, r := range batch {
			buf = append(buf, r.frame...)
		}
		err := s.commit(buf, len(batch))
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (s *Spool) commit(buf []byte, count int) error {
	n := int64(len(buf))
	err := s.ensureSegment(n)
	if err == nil {
		_, err = s.activeF.Write(buf)
	}
	if err == nil && !s.o.NoSync {
		err = s.activeF.Sync()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= n
	if err != nil {
		// What reached the file is unknown: seal the segment at its last
		// durable length so the next commit starts a clean one.
		s.total -= n
		if s.active != nil {
			s.active.sealed = true
			s.active = nil
			_ = s.activeF.Close()
			s.activeF = nil
		}
		s.broadcastLocked()
		return fmt.Errorf("spool: write: %w", err)
	}
	if !s.o.NoSync {
		s.stats.Fsyncs++
	}
	s.active.size += n
	s.active.durable += n
	s.stats.Appended += uint64(count)
	s.broadcastLocked()
	return nil
}

// ensureSegment rolls to a new segment when there is none or the current
// one would grow past SegmentBytes.
func (s *Spool) ensureSegment(n int64) error {
	if s.activeF != nil && (s.active.size == 0 || s.active.size+n <= s.o.SegmentBytes) {
		return nil
	}
	if s.activeF != nil {
		_ = s.activeF.Close()
		s.activeF = nil
		s.mu.Lock()
		s.active.sealed = true
		s.active = nil
		s.mu.Unlock()
	}
	id := s.nextID
	s.nextID++
	f, err := s.o.FS.Create(s.segPath(id))
	if err != nil {
		return err
	}
	if !s.o.NoSync {
		// The new name must be durable before anything in it is promised.
		if err := s.o.FS.SyncDir(s.o.Dir); err != nil {
			_ = f.Close()
			return err
		}
	}
	s.activeF = f
	s.mu.Lock()
	s.active = &segment{id: id}
	s.segs = append(s.segs, s.active)
	s.mu.Unlock()
	return nil
}

// Close stops the writer, fails appends still waiting, saves the cursor and
// closes every file. It is idempotent.
func (s *Spool) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.broadcastLocked()
		s.mu.Unlock()
		close(s.quit)
		s.wg.Wait()
		err = errors.Join(s.FlushCursor(), s.lock.Close())
		s.rd.close()
	})
	return err
}
