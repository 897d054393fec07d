// Package dnssrv finds where to send a SIP request, the way RFC 3263 says
// and few implementations do: NAPTR, then SRV with RFC 2782 weights, then
// A/AAAA, with caching and failover across the whole target list.
//
// DNS only gives failover if the client walks the list it gets. Go's
// net.Resolver has no NAPTR; sipgo takes the first address of the first
// SRV target and stops there; Kamailio ships with NAPTR, SRV load
// balancing and DNS failover off. A Resolver returns every target in the
// order to try them, and an Iterator walks it for one request, moving on
// after a transport error, a timeout or a 503 (RFC 3263 §4.3) and
// blacklisting what failed for later requests, like OpenSIPS.
//
// # Resolving
//
//	r, err := dnssrv.New(dnssrv.Config{})          // servers from /etc/resolv.conf
//	targets, err := r.ResolveString(ctx, "sip:example.com")
//	for _, t := range targets {
//		fmt.Println(t) // UDP sip1.example.com 5060 192.0.2.1
//	}
//
// Resolve follows RFC 3263 §4: a transport parameter, a numeric host or
// an explicit port skip NAPTR; NAPTR records (SIP+D2U, SIP+D2T, SIPS+D2T,
// SIP+D2S, SIPS+D2S, SIP+D2W, SIPS+D2W) are used by order then
// preference, only for transports in Config.Transports and only secure
// ones for a SIPS URI; without NAPTR it asks SRV for each supported
// transport (_sip._udp, _sip._tcp, _sips._tcp, _sip._ws, ...); without
// SRV, A/AAAA with the transport's default port. SRV targets are ordered
// by priority and, inside one priority, at random by weight per RFC 2782;
// an SRV "." target means the service is not offered (ErrServiceUnavailable).
//
// # Caching
//
// Records are cached by TTL, negative answers for min(SOA TTL, SOA
// MINIMUM) (RFC 2308), in LRU caches bounded by Config.CacheSize.
// Concurrent lookups of one name share one query. The computed target
// list of a URI is cached too: a repeated Resolve is a map lookup and the
// weighted draw. Resolve returns a new slice the caller owns (one
// allocation); AppendResolve fills the caller's slice and allocates
// nothing. With StaleWhileRevalidate an expired list is served while it
// is refreshed in the background.
//
// # Failover
//
//	it, err := r.Iterate(ctx, uri)
//	for t, ok := it.Next(); ok; t, ok = it.Next() {
//		res, err := send(t)
//		if !dnssrv.ShouldFailover(res, err) {
//			it.Succeeded()
//			break
//		}
//		it.Failed(dnssrv.RetryAfter(res))
//	}
//
// A stateless proxy must send a retransmission where the original went
// (§4.4): ResolveKey and IterateKey draw the order from RequestKey(req)
// instead of at random.
//
// Sender does all of this over a sipgo client, for requests to the
// Request-URI or through an outbound proxy or trunk (SenderConfig.Proxy).
//
// The dnssrvtest package runs an in-process DNS server and dnsmasq for
// tests; examples/sipdig is a command-line resolver built on this package.
package dnssrv
