package spool

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"

	"github.com/sipha/sipha/cdr/internal/vfs"
)

const readChunk = 256 << 10

// segReader reads frames from one segment at a time through a chunk cache.
type segReader struct {
	s       *Spool
	seg     uint64
	f       vfs.File
	buf     []byte
	bufOff  int64
	skipped atomic.Uint64
}

func (r *segReader) close() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	r.buf = r.buf[:0]
}

// bytes returns n bytes of segment seg at off, all of them below limit.
func (r *segReader) bytes(seg uint64, off, limit int64, n int) ([]byte, error) {
	if off+int64(n) > limit {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : off-r.bufOff+int64(n)], nil
	}
	size := max(n, readChunk)
	size = int(min(int64(size), limit-off))
	if cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	m, err := r.f.ReadAt(r.buf, off)
	r.buf, r.bufOff = r.buf[:m], off
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.buf[:n], nil
}

// next decodes the frame at off. It returns the entry, the offset after it,
// and ok=false with the offset to continue from when the bytes at off are
// damaged (the next good frame, or limit when none is left).
func (r *segReader) next(seg uint64, off, limit int64) (e Entry, end int64, ok bool, err error) {
	if r.f == nil || r.seg != seg {
		r.close()
		f, err := r.s.o.FS.Open(r.s.segPath(seg))
		if err != nil {
			return Entry{}, off, false, err
		}
		r.f, r.seg = f, seg
	}
	max := r.s.o.MaxRecordBytes
	h, err := r.bytes(seg, off, limit, headerSize)
	if err == nil {
		var plen int
		if plen, err = FrameLen(h, max); err == nil {
			var frame []byte
			if frame, err = r.bytes(seg, off, limit, headerSize+plen); err == nil {
				var payload []byte
				if payload, _, err = DecodeFrame(frame, max); err == nil {
					e, err = DecodeEntry(payload)
					if err == nil {
						e.Body = append([]byte(nil), e.Body...)
						return e, off + int64(headerSize+plen), true, nil
					}
				}
			}
		}
	}
	if err != nil && !isDamage(err) {
		return Entry{}, off, false, err
	}
	// Damaged: scan the rest of the segment for the next good frame.
	rest := make([]byte, limit-off)
	if _, err := r.f.ReadAt(rest, off); err != nil && !errors.Is(err, io.EOF) {
		return Entry{}, off, false, err
	}
	skip := int64(Resync(rest, max))
	if skip < 0 {
		skip = limit - off
	}
	r.skipped.Add(uint64(skip))
	r.s.log.Warn("spool: skipped damaged bytes", "segment", seg, "offset", off, "bytes", skip)
	return Entry{}, off + skip, false, nil
}

func isDamage(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrShort) || errors.Is(err, ErrMagic) ||
		errors.Is(err, ErrChecksum) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrEntry)
}

// Peek returns up to max entries (and about maxBytes of bodies) starting at
// the acknowledged position, without consuming them. Damaged bytes and
// emptied segments met on the way are acknowledged at once.
func (s *Spool) Peek(max, maxBytes int) ([]Entry, error) {
	s.mu.Lock()
	pos := s.cursor
	type view struct {
		id    uint64
		limit int64
	}
	views := make([]view, 0, len(s.segs))
	for _, sg := range s.segs {
		if sg.id >= pos.Seg {
			views = append(views, view{sg.id, sg.durable})
		}
	}
	s.mu.Unlock()

	var out []Entry
	bytes := 0
	skippedTo := pos
	for _, v := range views {
		if v.id > pos.Seg {
			pos = Pos{Seg: v.id}
		}
		for pos.Off < v.limit && len(out) < max && bytes < maxBytes {
			e, end, ok, err := s.rd.next(v.id, pos.Off, v.limit)
			if err != nil {
				return out, fmt.Errorf("spool: read segment %d: %w", v.id, err)
			}
			pos.Off = end
			if !ok {
				if len(out) == 0 {
					skippedTo = pos
				}
				continue
			}
			e.End = pos
			out = append(out, e)
			bytes += len(e.Body)
		}
		if len(out) >= max || bytes >= maxBytes {
			break
		}
		if len(out) == 0 {
			skippedTo = pos
		}
	}
	if len(out) == 0 && s.cursor.Less(skippedTo) {
		return nil, s.Ack(skippedTo)
	}
	return out, nil
}

// Ack records that every entry before end has been delivered, deleting the
// segments that are now entirely behind the cursor.
func (s *Spool) Ack(end Pos) error {
	s.mu.Lock()
	if end.Less(s.cursor) {
		s.mu.Unlock()
		return nil
	}
	s.cursor = end
	var gone []uint64
	keep := s.segs[:0]
	for _, sg := range s.segs {
		if sg.sealed && (sg.id < end.Seg || (sg.id == end.Seg && end.Off >= sg.durable)) {
			gone = append(gone, sg.id)
			s.total -= sg.size
			continue
		}
		keep = append(keep, sg)
	}
	clear(s.segs[len(keep):])
	s.segs = keep
	s.broadcastLocked()
	s.mu.Unlock()

	s.cursorMu.Lock()
	s.cursorDirty = true
	s.cursorMu.Unlock()
	var errs []error
	for _, id := range gone {
		if s.rd.f != nil && s.rd.seg == id {
			s.rd.close()
		}
		if err := s.o.FS.Remove(s.segPath(id)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(gone) > 0 && !s.o.NoSync {
		errs = append(errs, s.o.FS.SyncDir(s.o.Dir))
	}
	errs = append(errs, s.saveCursor(len(gone) > 0))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: ack: %w", err)
	}
	return nil
}

// FlushCursor writes the cursor file if acknowledgements are not yet in it.
func (s *Spool) FlushCursor() error { return s.saveCursor(true) }

// saveCursor writes the cursor file when it is behind, and unless force,
// only if CursorEvery has passed since the last write.
func (s *Spool) saveCursor(force bool) error {
	s.cursorMu.Lock()
	defer s.cursorMu.Unlock()
	if !s.cursorDirty || (!force && s.o.Now().Sub(s.cursorSaved) < s.o.CursorEvery) {
		return nil
	}
	s.mu.Lock()
	pos := s.cursor
	s.mu.Unlock()
	tmp := filepath.Join(s.o.Dir, cursorTmp)
	f, err := s.o.FS.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(EncodeCursor(pos))
	if err == nil && !s.o.NoSync {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := s.o.FS.Rename(tmp, filepath.Join(s.o.Dir, cursorName)); err != nil {
		return err
	}
	// A lost rename only brings the old cursor back (re-delivery, never
	// loss), but syncing keeps that re-delivery to at most CursorEvery.
	if !s.o.NoSync {
		if err := s.o.FS.SyncDir(s.o.Dir); err != nil {
			return err
		}
	}
	s.cursorDirty = false
	s.cursorSaved = s.o.Now()
	return nil
}

// loadCursor reads the cursor file; a missing or damaged one means "start
// at the oldest segment", which re-delivers rather than loses.
func (s *Spool) loadCursor() Pos {
	start := Pos{}
	if len(s.segs) > 0 {
		start = Pos{Seg: s.segs[0].id}
	}
	f, err := s.o.FS.Open(filepath.Join(s.o.Dir, cursorName))
	if err != nil {
		return start
	}
	defer f.Close()
	b := make([]byte, cursorSize+1)
	n, _ := f.ReadAt(b, 0)
	p, err := DecodeCursor(b[:n])
	if err != nil {
		s.log.Warn("spool: ignoring damaged cursor; entries may be re-delivered", "err", err)
		return start
	}
	if p.Less(start) {
		return start
	}
	for _, sg := range s.segs {
		if sg.id == p.Seg && p.Off > sg.durable {
			return Pos{Seg: p.Seg}
		}
	}
	return p
}

// Stats returns a snapshot of the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Segments = len(s.segs)
	st.Bytes = s.total - s.reserved
	st.SkippedBytes = s.rd.skipped.Load()
	return st
}

// Empty reports whether every durable entry has been acknowledged and no
// append is in flight.
func (s *Spool) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserved > 0 {
		return false
	}
	for _, sg := range s.segs {
		switch {
		case sg.id < s.cursor.Seg:
		case sg.id == s.cursor.Seg:
			if s.cursor.Off < sg.durable {
				return false
			}
		default:
			if sg.durable > 0 {
				return false
			}
		}
	}
	return true
}
