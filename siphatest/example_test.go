package siphatest_test

import (
	"fmt"

	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/siphatest"
)

// A user's proxy logic — at most 2 calls per tenant across the cluster —
// tested against a node failure. In a test, pass t instead of the
// Standalone.
func Example() {
	t := siphatest.NewStandalone("Example", nil)
	defer func() { fmt.Println("cleanup:", t.Close()) }()
	c := siphatest.NewCluster(t, 3, siphatest.Options{Disable: siphatest.BlockVIPs | siphatest.BlockCDRs})

	// The code under test: admit an INVITE while its tenant has < 2 calls.
	admit := func(n *siphatest.Node, callID, tenant string) bool {
		id := dialog.ID{CallID: callID, FromTag: "1"}
		n.Dialogs.Begin(id)
		if err := n.Dialogs.AddProfileLimit(id, "calls", tenant, 2); err != nil {
			n.Dialogs.Reject(id, 486)
			return false
		}
		return true
	}
	fmt.Println("call a via n1:", admit(c.Node("n1"), "a", "acme"))
	fmt.Println("call b via n2:", admit(c.Node("n2"), "b", "acme"))
	c.Eventually("n3 counting both calls", func() bool { return c.Node("n3").Dialogs.Count("calls", "acme") == 2 })

	c.Kill("n2") // b's node dies; its call still counts until its BYE
	fmt.Println("call c via n3:", admit(c.Node("n3"), "c", "acme"))
	c.Node("n3").Dialogs.Bye(dialog.ID{CallID: "b", FromTag: "1"}, dialog.PartyCaller)
	fmt.Println("call d via n3 after b's BYE:", admit(c.Node("n3"), "d", "acme"))
	// Output:
	// call a via n1: true
	// call b via n2: true
	// call c via n3: false
	// call d via n3 after b's BYE: true
	// cleanup: <nil>
}
