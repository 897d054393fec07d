package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
)

// registerScenario sends one REGISTER per call for a distinct user
// (u<prefix><call number>, Expires 3600) and expects its 200. UDP
// retransmissions follow RFC 3261 timers; a REGISTER without a final
// answer in 4 s is a failed call (FailedTimeoutOnRecv).
const registerScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register distinct users">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:example.com SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:u[prefix][call_number]@example.com>;tag=[pid]t[call_number]
      To: <sip:u[prefix][call_number]@example.com>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:u[prefix][call_number]@[local_ip]:[local_port]>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" timeout="4000" />
</scenario>
`

// loadResult is what one sipp run reports, summed over its processes.
type loadResult struct {
	Sent, OK, Failed, Timeouts, Retrans uint64
	Elapsed                             time.Duration
}

// Success is the fraction of REGISTERs answered 200.
func (r loadResult) Success() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.OK) / float64(r.Sent)
}

func (r *loadResult) add(o loadResult) {
	r.Sent += o.Sent
	r.OK += o.OK
	r.Failed += o.Failed
	r.Timeouts += o.Timeouts
	r.Retrans += o.Retrans
	r.Elapsed = max(r.Elapsed, o.Elapsed)
}

// perSipp is the rate one sipp process is asked for at most: about
// 20k REGISTER/s saturates one here, so higher rates are split.
const perSipp = 12000

// runSipp drives rate REGISTER/s at target for d with as many sipp
// processes as the rate needs, each with its own user prefix so every
// user is distinct.
func runSipp(ctx context.Context, dir, target string, rate int, d time.Duration) (loadResult, error) {
	scen := filepath.Join(dir, "register.xml")
	if err := os.WriteFile(scen, []byte(registerScenario), 0o644); err != nil {
		return loadResult{}, err
	}
	procs := (rate + perSipp - 1) / perSipp
	type out struct {
		r   loadResult
		err error
	}
	done := make(chan out, procs)
	for i := range procs {
		r := rate / procs
		if i == 0 {
			r += rate % procs
		}
		go func() {
			res, err := runOneSipp(ctx, filepath.Join(dir, fmt.Sprintf("sipp%d.csv", i)), scen, target, r, d,
				"-key", "prefix", fmt.Sprintf("p%d_", i))
			done <- out{res, err}
		}()
	}
	var sum loadResult
	var errs []error
	for range procs {
		o := <-done
		errs = append(errs, o.err)
		sum.add(o.r)
	}
	return sum, errors.Join(errs...)
}

// runOneSipp runs one sipp client placing rate calls/s of scenario scen
// at target for d and returns its counters from the stat file it writes.
func runOneSipp(ctx context.Context, stat, scen, target string, rate int, d time.Duration, extra ...string) (loadResult, error) {
	total := int(float64(rate) * d.Seconds())
	// A port of our own: sipp takes "-p 0" for 5060, where other SIP
	// software on the machine may listen or send.
	port, err := clustertest.FreeLoopbackPorts(1)
	if err != nil {
		return loadResult{}, err
	}
	args := append([]string{"-sf", scen, "-m", strconv.Itoa(total), "-r", strconv.Itoa(rate), "-l", strconv.Itoa(4*rate + 100),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port[0]), "-nostdin", "-trace_stat", "-stf", stat, "-fd", "3600",
		"-trace_err", "-error_file", strings.TrimSuffix(stat, ".csv") + ".errors",
		"-timeout", strconv.Itoa(int(d.Seconds())+30) + "s"}, extra...)
	cmd := exec.CommandContext(ctx, "sipp", append(args, target)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	runErr := cmd.Run()
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) { // exit 1 = some calls failed: read the stats
		return loadResult{}, fmt.Errorf("sipp: %w: %s", runErr, stderr.String())
	}
	b, err := os.ReadFile(stat)
	if err != nil {
		return loadResult{}, fmt.Errorf("sipp: %v (%v): %s", err, runErr, stderr.String())
	}
	return parseSippStat(b)
}

// parseSippStat reads the cumulative counters of the last line of sipp's
// -trace_stat CSV (fields separated by ';', a header line first).
func parseSippStat(b []byte) (loadResult, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return loadResult{}, errors.New("sipp stat file has no data line")
	}
	head := strings.Split(strings.TrimSpace(lines[0]), ";")
	last := strings.Split(strings.TrimSpace(lines[len(lines)-1]), ";")
	field := func(name string) (string, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return last[i], nil
			}
		}
		return "", fmt.Errorf("sipp stat file has no %s", name)
	}
	var r loadResult
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"OutgoingCall(C)", &r.Sent}, {"SuccessfulCall(C)", &r.OK}, {"FailedCall(C)", &r.Failed},
		{"FailedTimeoutOnRecv(C)", &r.Timeouts}, {"Retransmissions(C)", &r.Retrans},
	} {
		s, err := field(f.name)
		if err != nil {
			return r, err
		}
		if *f.dst, err = strconv.ParseUint(s, 10, 64); err != nil {
			return r, fmt.Errorf("sipp stat %s=%q: %w", f.name, s, err)
		}
	}
	s, err := field("ElapsedTime(C)")
	if err != nil {
		return r, err
	}
	if r.Elapsed, err = parseClock(s); err != nil {
		return r, err
	}
	return r, nil
}

// parseClock reads sipp's HH:MM:SS or HH:MM:SS:uuuuuu durations.
func parseClock(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return 0, fmt.Errorf("sipp time %q", s)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("sipp time %q", s)
		}
		n[i] = v
	}
	d := time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second
	return d + time.Duration(n[3])*time.Microsecond, nil
}
