package cluster

import (
	"context"
	"net"
)

// SetProtocolRange makes a node speak versions lo..hi, as an older or newer
// build would.
func SetProtocolRange(c *Config, lo, hi uint8) { c.minVersion, c.maxVersion = lo, hi }

// DialClusterStream opens an authenticated cluster connection to addr as
// this node would, for tests that write raw frames.
func (t *TCP) DialClusterStream(ctx context.Context, addr string) (net.Conn, error) {
	conn, _, br, _, err := t.dialStream(ctx, addr, StreamCluster, "")
	if err != nil {
		return nil, err
	}
	return &bufConn{Conn: conn, r: br}, nil
}

// Frame encoders for tests that forge traffic.
func AppendData(dst []byte, ch Channel, seq uint64, payload []byte) []byte {
	return appendData(dst, ch, seq, payload)
}
