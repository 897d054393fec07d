package cdr

import "errors"

// Sentinel errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrConfig reports an invalid Config or ReceiverConfig.
	ErrConfig = errors.New("cdr: invalid config")
	// ErrClosed is returned by Post after Close.
	ErrClosed = errors.New("cdr: poster closed")
	// ErrSpoolFull is returned by Post when the spool is at SpoolMaxBytes and
	// WhenFull is FullReject. The record was not stored.
	ErrSpoolFull = errors.New("cdr: spool full")
	// ErrTooLarge is returned by Post for a record larger than MaxRecordBytes
	// after filtering.
	ErrTooLarge = errors.New("cdr: record too large")
	// ErrBadID is returned by Post for an ID that cannot travel in an HTTP
	// header (empty after trimming, too long, or with control characters).
	ErrBadID = errors.New("cdr: bad record ID")
	// ErrBadRecord is returned by Post for fields that cannot be encoded as JSON.
	ErrBadRecord = errors.New("cdr: bad record")
)
