package crashfs

import (
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sipha/sipha/cdr/internal/vfs"
)

// behaves runs the operations the spool uses against fs, so the crash
// simulator is held to what the real file system does.
func behaves(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	if err := fs.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "a")
	f, err := fs.Create(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello ", "world"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Size(); err != nil || n != 11 {
		t.Fatalf("size %d %v", n, err)
	}
	_ = f.Close()
	r, err := fs.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := r.ReadAt(buf, 6); n != 5 || !errors.Is(err, io.EOF) || string(buf[:n]) != "world" {
		t.Fatalf("ReadAt: %d %v %q", n, err, buf[:n])
	}
	_ = r.Close()
	if err := fs.Rename(a, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	names, err := fs.ReadDir(dir)
	if err != nil || !slices.Contains(names, "b") || slices.Contains(names, "a") {
		t.Fatalf("ReadDir %v %v", names, err)
	}
	if _, err := fs.Open(a); err == nil {
		t.Fatal("renamed-away name still opens")
	}
	l, err := fs.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Lock(dir); err == nil {
		t.Fatal("second lock granted")
	}
	_ = l.Close()
	if err := fs.Remove(filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(filepath.Join(dir, "b")); err == nil {
		t.Fatal("removing a missing file succeeded")
	}
}

func TestBehavesLikeOS(t *testing.T) {
	behaves(t, vfs.OS{}, t.TempDir())
	behaves(t, New(), "/d")
}

func TestCrashKeepsOnlySyncedState(t *testing.T) {
	fs := New()
	_ = fs.MkdirAll("/d")
	synced, _ := fs.Create("/d/synced")
	_, _ = synced.Write([]byte("durable"))
	_ = synced.Sync()
	_ = fs.SyncDir("/d")
	_, _ = synced.Write([]byte(" lost"))
	unnamed, _ := fs.Create("/d/unnamed") // entry never synced
	_, _ = unnamed.Write([]byte("x"))
	_ = unnamed.Sync()
	_ = fs.Rename("/d/synced", "/d/renamed") // rename never synced
	fs.Crash()
	if _, err := synced.Write([]byte("after")); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write after crash: %v", err)
	}
	after := fs.Restart(nil)
	names, _ := after.ReadDir("/d")
	if !slices.Equal(names, []string{"synced"}) {
		t.Fatalf("after restart: %v", names)
	}
	if b, _ := after.Bytes("/d/synced"); string(b) != "durable" {
		t.Fatalf("content %q", b)
	}
}

func TestRestartTearsTheUnsyncedTail(t *testing.T) {
	torn := false
	for seed := uint64(0); seed < 50; seed++ {
		fs := New()
		_ = fs.MkdirAll("/d")
		f, _ := fs.Create("/d/f")
		_ = fs.SyncDir("/d")
		_, _ = f.Write([]byte("aaaa"))
		_ = f.Sync()
		_, _ = f.Write([]byte("bbbbbbbb"))
		fs.Crash()
		b, _ := fs.Restart(rand.New(rand.NewPCG(seed, 0))).Bytes("/d/f")
		if len(b) < 4 || string(b[:4]) != "aaaa" {
			t.Fatalf("seed %d: synced prefix damaged: %q", seed, b)
		}
		if len(b) > 4 {
			torn = true
		}
	}
	if !torn {
		t.Fatal("no seed kept part of the unsynced tail")
	}
}
