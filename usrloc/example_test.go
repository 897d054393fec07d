package usrloc_test

import (
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	"github.com/sipha/sipha/usrloc"
)

// A registration and a lookup, without SIP: what the registrar does for a
// REGISTER with two contacts.
func ExampleStore_Register() {
	st, err := usrloc.New(usrloc.Config{Node: "n1"})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	_, err = st.Register(usrloc.Registration{
		AOR: "sip:alice@example.com", CallID: "a84b4c76e66710", CSeq: 1,
		Contacts: []usrloc.ContactUpdate{
			{URI: "sip:alice@192.0.2.4:5060", Q: 500, Expires: time.Hour, Received: "198.51.100.7:31000", Socket: "udp:203.0.113.10:5060"},
			{URI: "sip:alice@192.0.2.5:5060", Q: 1000, Expires: time.Hour},
		},
	}, nil)
	if err != nil {
		panic(err)
	}
	for _, b := range st.Lookup("sip:alice@example.com", nil) {
		fmt.Println(b.Contact, b.Q, b.Node)
	}
	// Output:
	// sip:alice@192.0.2.5:5060 1000 n1
	// sip:alice@192.0.2.4:5060 500 n1
}

// An un-registration leaves nothing to find; a late replay of the older
// request (same Call-ID, lower CSeq) is refused.
func ExampleStore_Register_unregister() {
	st, _ := usrloc.New(usrloc.Config{})
	defer st.Close()
	c := usrloc.ContactUpdate{URI: "sip:bob@192.0.2.9", Expires: time.Hour}
	st.Register(usrloc.Registration{AOR: "sip:bob@example.com", CallID: "x", CSeq: 1, Contacts: []usrloc.ContactUpdate{c}}, nil)
	c.Expires = 0
	st.Register(usrloc.Registration{AOR: "sip:bob@example.com", CallID: "x", CSeq: 2, Contacts: []usrloc.ContactUpdate{c}}, nil)
	fmt.Println(len(st.Lookup("sip:bob@example.com", nil)))
	c.Expires = time.Hour
	_, err := st.Register(usrloc.Registration{AOR: "sip:bob@example.com", CallID: "x", CSeq: 1, Contacts: []usrloc.ContactUpdate{c}}, nil)
	fmt.Println(err)
	// Output:
	// 0
	// usrloc: CSeq not above the binding's for the same Call-ID
}

// The registrar answering a REGISTER, here through sipgo's test recorder
// instead of a network server (srv.OnRegister(reg.Handle) in production).
func ExampleRegistrar_Handle() {
	st, _ := usrloc.New(usrloc.Config{Node: "n1"})
	defer st.Close()
	reg, _ := usrloc.NewRegistrar(st, usrloc.RegistrarConfig{})
	msg := "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776asdhds\r\n" +
		"To: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710\r\nCSeq: 314159 REGISTER\r\n" +
		"Contact: <sip:alice@192.0.2.4:5060>;expires=600, <sip:alice@192.0.2.5>;q=0.5\r\n" +
		"Content-Length: 0\r\n\r\n"
	parsed, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		panic(err)
	}
	req := parsed.(*sip.Request)
	rec := siptest.NewServerTxRecorder(req)
	reg.Handle(req, rec)
	res := rec.Result()[0]
	fmt.Println(res.StatusCode, res.Reason)
	for _, h := range res.GetHeaders("contact") {
		fmt.Println(h.Value())
	}
	// Output:
	// 200 OK
	// <sip:alice@192.0.2.4:5060>;expires=600
	// <sip:alice@192.0.2.5>;expires=3600;q=0.5
}
