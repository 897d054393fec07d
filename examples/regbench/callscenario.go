package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// uacScenario places one short call per sipp call to the user of the
// injection file's line: INVITE, 200, ACK, 100 ms of talk, BYE, 200. ACK
// and BYE follow the Record-Route, so every message of the call passes
// the proxy twice. Any answer missing for 4 s fails the call as a
// timeout (sipp arms a timeout only on the message it waits for, so each
// recv has one).
const uacScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="regbench: short call">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field0]@example.com SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:caller@example.org>;tag=[pid]c[call_number]
      To: <sip:[field0]@example.com>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true" timeout="4000"/>
  <recv response="180" optional="true" timeout="4000"/>
  <recv response="200" rrs="true" timeout="4000"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:caller@example.org>;tag=[pid]c[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:caller@example.org>;tag=[pid]c[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" timeout="4000"/>
</scenario>
`

// uasScenario answers every call with 180 and 200, copying the
// Record-Route so the caller's ACK and BYE come back through the proxy
// (sipp's built-in uas does not), and answers the BYE.
const uasScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="regbench: answer">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]s[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]s[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" optional="true" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="1000"/>
</scenario>
`

// callUsers is how many callees the UAS answers for; calls go to them in
// turn.
const callUsers = 100

// writeCallFiles writes the two scenarios and the callees' injection
// file into dir.
func writeCallFiles(dir string) (uac, uas, users string, err error) {
	uac, uas, users = filepath.Join(dir, "uac.xml"), filepath.Join(dir, "uas.xml"), filepath.Join(dir, "users.csv")
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i := range callUsers {
		fmt.Fprintf(&b, "u%d;\n", i)
	}
	for f, body := range map[string]string{uac: uacScenario, uas: uasScenario, users: b.String()} {
		if err = os.WriteFile(f, []byte(body), 0o644); err != nil {
			return
		}
	}
	return
}

// registerCallees registers every callee through the registrar at target
// from one UDP port, which it returns free again: the UAS then listens on
// it, the address the registrar saw the REGISTERs come from.
func registerCallees(ctx context.Context, target string) (int, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	local := pc.LocalAddr().String()
	to, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	for i := range callUsers {
		msg := fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-rb%d;rport\r\n"+
			"From: <sip:u%d@example.com>;tag=rb%d\r\nTo: <sip:u%d@example.com>\r\nCall-ID: regbench-callee-%d\r\n"+
			"CSeq: 1 REGISTER\r\nContact: <sip:u%d@%s>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			local, i, i, i, i, i, i, local)
		ok := false
		for try := 0; try < 5 && !ok && ctx.Err() == nil; try++ {
			if _, err := pc.WriteTo([]byte(msg), to); err != nil {
				return 0, err
			}
			pc.SetReadDeadline(time.Now().Add(time.Second))
			for !ok {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					break // retransmit
				}
				res := string(buf[:n])
				ok = strings.HasPrefix(res, "SIP/2.0 200") && strings.Contains(res, fmt.Sprintf("regbench-callee-%d\r\n", i))
			}
		}
		if !ok {
			return 0, fmt.Errorf("REGISTER of callee u%d through %s: no 200", i, target)
		}
	}
	return pc.LocalAddr().(*net.UDPAddr).Port, nil
}
