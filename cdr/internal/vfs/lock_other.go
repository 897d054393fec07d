//go:build !unix

package vfs

import "io"

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Lock is a no-op where flock is unavailable: one Poster per directory is
// then the caller's duty.
func (OS) Lock(string) (io.Closer, error) { return nopCloser{}, nil }
