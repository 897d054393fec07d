package cluster

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// Protocol versions this build speaks. A node speaks the highest version
// both sides support, so during a rolling upgrade N-1 and N nodes talk at
// N-1. Member.Version tells blocks which version a peer negotiated, so a block
// can hold back a new message format until every member speaks it.
const (
	ProtocolMin uint8 = 1
	ProtocolMax uint8 = 1
)

// StreamKind is the first byte a connection sends after TLS. It multiplexes
// one port: the cluster transport itself, Raft's stream layer, and any other
// stream registered with StreamListener.
type StreamKind byte

const (
	// StreamCluster carries the transport's own frames.
	StreamCluster StreamKind = 'C'
	// StreamRaft carries hashicorp/raft's RPCs (package ownership/raftowner).
	StreamRaft StreamKind = 'R'
	// streamHeartbeat carries only pings and pongs, so liveness never waits
	// behind data.
	streamHeartbeat StreamKind = 'H'
)

const (
	helloMagic = "SPHA"
	maxIDLen   = 255
	nonceLen   = 16
	macLen     = sha256.Size
	flagSecret = 1
	statusOK   = 0
	statusNo   = 1
)

// hello is one side's introduction. Version carries the chosen version in
// the server's hello.
type hello struct {
	kind        StreamKind
	minVer      uint8
	maxVer      uint8
	flags       uint8
	incarnation uint64
	nonce       [nonceLen]byte
	id          NodeID
	cluster     string
	addr        string
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, 64+len(h.id)+len(h.cluster)+len(h.addr))
	b = append(b, helloMagic...)
	b = append(b, byte(h.kind), h.minVer, h.maxVer, h.flags)
	b = binary.BigEndian.AppendUint64(b, h.incarnation)
	b = append(b, h.nonce[:]...)
	for _, s := range []string{string(h.id), h.cluster, h.addr} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

// readHello reads a hello and returns it with its raw bytes (for the MAC).
func readHello(r *bufio.Reader) (hello, []byte, error) {
	var h hello
	fixed := make([]byte, 4+4+8+nonceLen)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return h, nil, err
	}
	if string(fixed[:4]) != helloMagic {
		return h, nil, fmt.Errorf("%w: bad magic (not a sipha peer)", ErrBadHandshake)
	}
	h.kind, h.minVer, h.maxVer, h.flags = StreamKind(fixed[4]), fixed[5], fixed[6], fixed[7]
	h.incarnation = binary.BigEndian.Uint64(fixed[8:16])
	copy(h.nonce[:], fixed[16:])
	raw := fixed
	var strs [3]string
	for i := range strs {
		n, err := r.ReadByte()
		if err != nil {
			return h, nil, err
		}
		s := make([]byte, n)
		if _, err := io.ReadFull(r, s); err != nil {
			return h, nil, err
		}
		raw = append(append(raw, n), s...)
		strs[i] = string(s)
	}
	h.id, h.cluster, h.addr = NodeID(strs[0]), strs[1], strs[2]
	if h.id == "" {
		return h, nil, fmt.Errorf("%w: empty node ID", ErrBadHandshake)
	}
	if h.minVer == 0 || h.minVer > h.maxVer {
		return h, nil, fmt.Errorf("%w: bad version range %d..%d", ErrBadHandshake, h.minVer, h.maxVer)
	}
	return h, raw, nil
}

// handshakeResult is what a completed handshake learned of the peer.
type handshakeResult struct {
	id          NodeID
	addr        string
	incarnation uint64
	version     uint8
}

// handshaker runs the handshake for one transport.
type handshaker struct {
	id          NodeID
	cluster     string
	addr        string
	incarnation uint64
	secret      []byte
	tls         bool
	minVer      uint8
	maxVer      uint8
}

func (hs *handshaker) local(kind StreamKind) hello {
	h := hello{kind: kind, minVer: hs.minVer, maxVer: hs.maxVer, incarnation: hs.incarnation,
		id: hs.id, cluster: hs.cluster, addr: hs.addr}
	if hs.secret != nil {
		h.flags |= flagSecret
	}
	rand.Read(h.nonce[:]) // never fails: crypto/rand crashes the program instead
	return h
}

func (hs *handshaker) mac(label string, client, server []byte) []byte {
	m := hmac.New(sha256.New, hs.secret)
	m.Write([]byte(label))
	m.Write(client)
	m.Write(server)
	return m.Sum(nil)
}

// negotiate picks the version both ranges share, the highest one.
func negotiate(aMin, aMax, bMin, bMax uint8) (uint8, bool) {
	v := min(aMax, bMax)
	return v, v >= max(aMin, bMin)
}

// dial runs the client side over conn (TLS already done); it sends the
// stream kind byte first.
// want, when not empty, is the node the caller meant to reach.
func (hs *handshaker) dial(conn net.Conn, r *bufio.Reader, kind StreamKind, want NodeID) (handshakeResult, error) {
	my := hs.local(kind)
	myRaw := my.marshal()
	// The stream kind byte travels with the hello: one segment, one round trip.
	if _, err := conn.Write(append([]byte{byte(kind)}, myRaw...)); err != nil {
		return handshakeResult{}, err
	}
	if err := readStatus(r); err != nil {
		return handshakeResult{}, err
	}
	peer, peerRaw, err := readHello(r)
	if err != nil {
		return handshakeResult{}, err
	}
	if want != "" && peer.id != want {
		return handshakeResult{}, fmt.Errorf("%w: reached node %q, expected %q", ErrBadHandshake, peer.id, want)
	}
	if peer.minVer != peer.maxVer || peer.maxVer < hs.minVer || peer.maxVer > hs.maxVer {
		return handshakeResult{}, fmt.Errorf("%w: server chose version %d..%d", ErrVersion, peer.minVer, peer.maxVer)
	}
	if err := hs.checkTLSIdentity(conn, peer.id); err != nil {
		return handshakeResult{}, err
	}
	if hs.secret != nil {
		theirs := make([]byte, macLen)
		if _, err := io.ReadFull(r, theirs); err != nil {
			return handshakeResult{}, err
		}
		if !hmac.Equal(theirs, hs.mac("sipha server", myRaw, peerRaw)) {
			return handshakeResult{}, fmt.Errorf("%w: node %q does not know the cluster secret", ErrAuthFailed, peer.id)
		}
		if _, err := conn.Write(hs.mac("sipha client", myRaw, peerRaw)); err != nil {
			return handshakeResult{}, err
		}
		if err := readStatus(r); err != nil {
			return handshakeResult{}, err
		}
	}
	return handshakeResult{id: peer.id, addr: peer.addr, incarnation: peer.incarnation, version: peer.maxVer}, nil
}

// accept runs the server side over conn (TLS done, kind byte read).
func (hs *handshaker) accept(conn net.Conn, r *bufio.Reader, kind StreamKind) (handshakeResult, error) {
	peer, peerRaw, err := readHello(r)
	if err != nil {
		return handshakeResult{}, err
	}
	refuse := func(err error) (handshakeResult, error) {
		reason := err.Error()
		if len(reason) > 255 {
			reason = reason[:255]
		}
		conn.Write(append([]byte{statusNo, byte(len(reason))}, reason...))
		return handshakeResult{}, err
	}
	switch {
	case peer.kind != kind:
		return refuse(fmt.Errorf("%w: stream kind mismatch", ErrBadHandshake))
	case peer.cluster != hs.cluster:
		return refuse(fmt.Errorf("%w: peer %q is in cluster %q, this node in %q", ErrClusterName, peer.id, peer.cluster, hs.cluster))
	case peer.id == hs.id:
		return refuse(fmt.Errorf("%w: peer claims this node's own ID %q", ErrBadHandshake, peer.id))
	case hs.secret != nil && peer.flags&flagSecret == 0:
		return refuse(fmt.Errorf("%w: node %q offers no cluster secret", ErrAuthFailed, peer.id))
	case hs.secret == nil && peer.flags&flagSecret != 0:
		return refuse(fmt.Errorf("%w: node %q uses a cluster secret, this node has none", ErrAuthFailed, peer.id))
	}
	v, ok := negotiate(hs.minVer, hs.maxVer, peer.minVer, peer.maxVer)
	if !ok {
		return refuse(fmt.Errorf("%w: peer %q speaks %d..%d, this node %d..%d", ErrVersion, peer.id, peer.minVer, peer.maxVer, hs.minVer, hs.maxVer))
	}
	if err := hs.checkTLSIdentity(conn, peer.id); err != nil {
		return refuse(err)
	}
	my := hs.local(kind)
	my.minVer, my.maxVer = v, v
	myRaw := my.marshal()
	out := append([]byte{statusOK}, myRaw...)
	if hs.secret != nil {
		out = append(out, hs.mac("sipha server", peerRaw, myRaw)...)
	}
	if _, err := conn.Write(out); err != nil {
		return handshakeResult{}, err
	}
	if hs.secret != nil {
		theirs := make([]byte, macLen)
		if _, err := io.ReadFull(r, theirs); err != nil {
			return handshakeResult{}, err
		}
		if !hmac.Equal(theirs, hs.mac("sipha client", peerRaw, myRaw)) {
			return refuse(fmt.Errorf("%w: node %q does not know the cluster secret", ErrAuthFailed, peer.id))
		}
		if _, err := conn.Write([]byte{statusOK}); err != nil {
			return handshakeResult{}, err
		}
	}
	return handshakeResult{id: peer.id, addr: peer.addr, incarnation: peer.incarnation, version: v}, nil
}

// readStatus reads the server's status byte and, on refusal, its reason.
func readStatus(r *bufio.Reader) error {
	s, err := r.ReadByte()
	if err != nil {
		return err
	}
	if s == statusOK {
		return nil
	}
	n, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: refused", ErrBadHandshake)
	}
	reason := make([]byte, n)
	io.ReadFull(r, reason)
	return fmt.Errorf("%w: refused by peer: %s", ErrBadHandshake, reason)
}

// checkTLSIdentity binds the node ID a peer claims to its certificate.
func (hs *handshaker) checkTLSIdentity(conn net.Conn, id NodeID) error {
	if !hs.tls {
		return nil
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return fmt.Errorf("%w: TLS required", ErrAuthFailed)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: peer %q sent no certificate", ErrAuthFailed, id)
	}
	if !certNames(certs[0], id) {
		return fmt.Errorf("%w: certificate does not name node %q", ErrAuthFailed, id)
	}
	return nil
}

// certNames reports whether a certificate names node id.
func certNames(c *x509.Certificate, id NodeID) bool {
	for _, d := range c.DNSNames {
		if d == string(id) {
			return true
		}
	}
	for _, u := range c.URIs {
		if u.Scheme == "sipha" && u.Opaque == string(id) {
			return true
		}
	}
	return c.Subject.CommonName == string(id)
}

// tlsConfigs derives the server and client TLS configurations: both sides
// verify the chain against RootCAs themselves, and the node ID is bound to
// the certificate after the sipha hello names it.
func tlsConfigs(base *tls.Config) (server, client *tls.Config) {
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("cluster: peer sent no certificate")
		}
		opts := x509.VerifyOptions{
			Roots:         base.RootCAs,
			Intermediates: x509.NewCertPool(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	server = base.Clone()
	server.ClientAuth = tls.RequireAnyClientCert
	server.VerifyConnection = verify
	client = base.Clone()
	client.InsecureSkipVerify = true // the chain is verified by VerifyConnection, the name by certNames
	client.VerifyConnection = verify
	if server.MinVersion == 0 {
		server.MinVersion = tls.VersionTLS13
		client.MinVersion = tls.VersionTLS13
	}
	return server, client
}
