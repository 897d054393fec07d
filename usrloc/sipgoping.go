package usrloc

import (
	"context"
	"fmt"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// SipgoKeepalive returns a PingerConfig.Send that sends an OPTIONS to the
// binding's contact through client, addressed to the source the binding
// registered from (its NAT mapping), and succeeds on any final response.
// Build client on the UserAgent whose server listens on the binding's
// socket, with sipgo.WithClientAddr set to that socket's address, so the
// keepalive leaves from the address the NAT expects.
func SipgoKeepalive(client *sipgo.Client) func(ctx context.Context, b Binding) error {
	return func(ctx context.Context, b Binding) error {
		var uri sip.Uri
		if err := sip.ParseUri(b.Contact, &uri); err != nil {
			return fmt.Errorf("usrloc: contact %q: %w", b.Contact, err)
		}
		req := sip.NewRequest(sip.OPTIONS, uri)
		if b.Received != "" {
			req.SetDestination(b.Received)
		}
		req.SetTransport("UDP")
		res, err := client.Do(ctx, req)
		if err != nil {
			return err
		}
		if res.StatusCode < 200 {
			return fmt.Errorf("usrloc: keepalive answered %d", res.StatusCode)
		}
		return nil
	}
}
