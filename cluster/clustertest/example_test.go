package clustertest_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// A Host is what a transport listens and dials on.
var _ cluster.Network = (*clustertest.Host)(nil)

// Two hosts exchange bytes; a partition holds them until Heal.
func Example() {
	n := clustertest.NewNetwork(1)
	defer n.Close()
	ctx := context.Background()

	l, _ := n.Host("b").Listen(ctx, "b:7946")
	c, _ := n.Host("a").Dial(ctx, "b:7946")
	s, _ := l.Accept()
	fmt.Println(c.LocalAddr().Network(), c.RemoteAddr(), "->", s.LocalAddr())

	buf := make([]byte, 16)
	c.Write([]byte("hello"))
	k, _ := s.Read(buf)
	fmt.Printf("b read %q\n", buf[:k])

	n.Partition([]string{"a"}, []string{"b"})
	c.Write([]byte("held"))
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := s.Read(buf)
	fmt.Println("during partition:", err)
	fmt.Println("bytes pending a->b:", n.Stats().Pending[clustertest.Link{From: "a", To: "b"}])

	n.Heal()
	s.SetReadDeadline(time.Time{})
	k, _ = s.Read(buf)
	fmt.Printf("after heal b read %q\n", buf[:k])

	c.Close()
	_, err = s.Read(buf)
	fmt.Println("then:", err == io.EOF)
	// Output:
	// mem b:7946 -> b:7946
	// b read "hello"
	// during partition: read mem b:7946->a:49152: i/o timeout
	// bytes pending a->b: 4
	// after heal b read "held"
	// then: true
}

// Kill is a process death: the peer sees a reset, dials are refused.
func ExampleNetwork_Kill() {
	n := clustertest.NewNetwork(1)
	defer n.Close()
	ctx := context.Background()
	l, _ := n.Host("b").Listen(ctx, "b:7946")
	c, _ := n.Host("a").Dial(ctx, "b:7946")
	l.Accept()

	n.Kill("b")
	_, err := c.Read(make([]byte, 1))
	fmt.Println(err)
	_, err = n.Host("a").Dial(ctx, "b:7946")
	fmt.Println(err)

	n.Restart("b")
	l, err = n.Host("b").Listen(ctx, "b:7946")
	fmt.Println("listen after restart:", err)
	l.Close()
	// Output:
	// read mem a:49152->b:7946: read: connection reset by peer
	// dial mem b:7946: connect: connection refused
	// listen after restart: <nil>
}
