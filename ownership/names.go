package ownership

import (
	"fmt"
	"strings"

	"github.com/sipha/sipha/cluster"
)

// MaxNameLen is the longest resource name accepted.
const MaxNameLen = 255

// Resource kinds of sipha's blocks. A resource name is "kind/id".
const (
	KindVIP    = "vip"
	KindNode   = "node"
	KindTenant = "tenant"
)

// VIPResource names the resource that owns a floating address, e.g.
// "vip/198.51.100.100".
func VIPResource(addr string) string { return KindVIP + "/" + addr }

// NodeResource names the resource holding node n's duties (its dialogs,
// keepalives) for whoever takes them over, e.g. "node/n2".
func NodeResource(n cluster.NodeID) string { return KindNode + "/" + string(n) }

// TenantResource names a tenant's placement, e.g. "tenant/acme".
func TenantResource(tenant string) string { return KindTenant + "/" + tenant }

// ValidName checks a resource name: "kind/id" where kind is lower-case
// letters, digits and '-', and id is non-empty printable ASCII without
// spaces; at most MaxNameLen bytes.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrBadName, len(name), MaxNameLen)
	}
	kind, id, ok := strings.Cut(name, "/")
	if !ok || kind == "" || id == "" {
		return fmt.Errorf("%w: %q is not kind/id", ErrBadName, name)
	}
	for _, c := range []byte(kind) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: kind %q has %q", ErrBadName, kind, c)
		}
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: id of %q has byte %#x", ErrBadName, name, c)
		}
	}
	return nil
}
