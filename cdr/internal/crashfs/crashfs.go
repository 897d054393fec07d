// Package crashfs is an in-memory vfs.FS that models what survives a power
// loss: file bytes survive only up to the last Sync of that file, and a
// directory entry (create, rename, remove) survives only after SyncDir of its
// directory. Crash freezes the FS; Restart returns the state a rebooted
// machine would find, optionally keeping a torn, possibly garbled, piece of
// the unsynced tail of each file, as a real disk may.
//
// It exists for the cdr spool's crash tests and lives in an internal package
// so no production code can reach it.
package crashfs

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/sipha/sipha/cdr/internal/vfs"
)

// ErrCrashed is returned by every operation after Crash.
var ErrCrashed = errors.New("crashfs: crashed")

type inode struct {
	data   []byte
	synced int // length of the durable prefix; files are append-only
}

// FS is the crash-simulating file system. It is safe for concurrent use.
type FS struct {
	mu      sync.Mutex
	names   map[string]*inode // the namespace as the running process sees it
	durable map[string]*inode // the namespace as of the last SyncDir of each dir
	dirs    map[string]bool
	locked  map[string]bool
	crashed bool
}

var _ vfs.FS = (*FS)(nil)

// New returns an empty FS.
func New() *FS {
	return &FS{names: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{}}
}

// Crash freezes the FS: every later call on it or on its files fails with
// ErrCrashed, exactly as a process would see nothing after a power cut.
func (fs *FS) Crash() {
	fs.mu.Lock()
	fs.crashed = true
	fs.mu.Unlock()
}

// Restart returns the FS a rebooted machine would see after Crash. With a
// non-nil rng each file keeps a random prefix of its unsynced bytes (a torn
// write) and, half of the time, one byte of that prefix is flipped.
func (fs *FS) Restart(rng *rand.Rand) *FS {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	next := New()
	for d := range fs.dirs {
		next.dirs[d] = true
	}
	// Iterate in sorted order so a seeded rng gives a replayable result.
	paths := make([]string, 0, len(fs.durable))
	for p := range fs.durable {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		in := fs.durable[p]
		keep := in.synced
		if rng != nil && len(in.data) > in.synced {
			keep += rng.IntN(len(in.data) - in.synced + 1)
		}
		data := append([]byte(nil), in.data[:keep]...)
		if rng != nil && keep > in.synced && rng.IntN(2) == 0 {
			data[in.synced+rng.IntN(keep-in.synced)] ^= byte(1 + rng.IntN(255))
		}
		n := &inode{data: data, synced: len(data)}
		next.names[p] = n
		next.durable[p] = n
	}
	return next
}

// Bytes returns a copy of the current contents of name, for test assertions.
func (fs *FS) Bytes(name string) ([]byte, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	in, ok := fs.names[filepath.Clean(name)]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), in.data...), true
}

// Corrupt overwrites bytes of name at off, durably, to model bit rot.
func (fs *FS) Corrupt(name string, off int, b []byte) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	in, ok := fs.names[filepath.Clean(name)]
	if !ok || off+len(b) > len(in.data) {
		return os.ErrNotExist
	}
	copy(in.data[off:], b)
	return nil
}

func (fs *FS) check() error {
	if fs.crashed {
		return ErrCrashed
	}
	return nil
}

// Create implements vfs.FS.
func (fs *FS) Create(name string) (vfs.File, error) {
	name = filepath.Clean(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return nil, err
	}
	if !fs.dirs[filepath.Dir(name)] {
		return nil, &os.PathError{Op: "create", Path: name, Err: os.ErrNotExist}
	}
	in := &inode{}
	fs.names[name] = in
	return &file{fs: fs, in: in, write: true}, nil
}

// Open implements vfs.FS.
func (fs *FS) Open(name string) (vfs.File, error) {
	name = filepath.Clean(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return nil, err
	}
	in, ok := fs.names[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return &file{fs: fs, in: in}, nil
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	in, ok := fs.names[oldname]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: os.ErrNotExist}
	}
	delete(fs.names, oldname)
	fs.names[newname] = in
	return nil
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	name = filepath.Clean(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	if _, ok := fs.names[name]; !ok {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	delete(fs.names, name)
	return nil
}

// ReadDir implements vfs.FS.
func (fs *FS) ReadDir(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return nil, err
	}
	if !fs.dirs[dir] {
		return nil, &os.PathError{Op: "readdir", Path: dir, Err: os.ErrNotExist}
	}
	var out []string
	for p := range fs.names {
		if filepath.Dir(p) == dir {
			out = append(out, filepath.Base(p))
		}
	}
	sort.Strings(out)
	return out, nil
}

// MkdirAll implements vfs.FS. Directories are treated as durable at once:
// the spool creates its directory once, before anything is promised.
func (fs *FS) MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fs.dirs[d] = true
		if d == filepath.Dir(d) {
			break
		}
	}
	return nil
}

// SyncDir implements vfs.FS: the durable entries of dir become the current ones.
func (fs *FS) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	for p := range fs.durable {
		if filepath.Dir(p) == dir {
			delete(fs.durable, p)
		}
	}
	for p, in := range fs.names {
		if filepath.Dir(p) == dir {
			fs.durable[p] = in
		}
	}
	return nil
}

// Lock implements vfs.FS. Exclusive use is checked only in-process.
func (fs *FS) Lock(dir string) (io.Closer, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return nil, err
	}
	if fs.locked == nil {
		fs.locked = map[string]bool{}
	}
	dir = filepath.Clean(dir)
	if fs.locked[dir] {
		return nil, errors.New("crashfs: directory is locked")
	}
	fs.locked[dir] = true
	return unlocker{fs, dir}, nil
}

type unlocker struct {
	fs  *FS
	dir string
}

func (u unlocker) Close() error {
	u.fs.mu.Lock()
	defer u.fs.mu.Unlock()
	delete(u.fs.locked, u.dir)
	return nil
}

type file struct {
	fs     *FS
	in     *inode
	write  bool
	closed bool
}

func (f *file) Write(b []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return 0, err
	}
	if f.closed || !f.write {
		return 0, os.ErrClosed
	}
	f.in.data = append(f.in.data, b...)
	return len(b), nil
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return 0, err
	}
	if f.closed {
		return 0, os.ErrClosed
	}
	if off >= int64(len(f.in.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.in.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return err
	}
	if f.closed {
		return os.ErrClosed
	}
	f.in.synced = len(f.in.data)
	return nil
}

func (f *file) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return 0, err
	}
	return int64(len(f.in.data)), nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.closed = true
	return nil
}

// Names lists every path in the current namespace with the given prefix.
func (fs *FS) Names(prefix string) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	for p := range fs.names {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
