package usrloc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool finds a binary; without it the test fails under CI
// (SIPHA_CI=1) and is skipped elsewhere.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SIPHA_CI") != "" {
		t.Fatalf("%s not installed (Debian package %s, listed in .ci/apt-packages)", name, pkg)
	}
	t.Skipf("%s not installed: apt-get install %s", name, pkg)
	return ""
}

// TestSippRegistersUsers: SIPp (Debian sip-tester) registers 300 users
// against a registrar built from this package behind a real sipgo UDP
// server; every REGISTER must get its 200 and every user must be stored
// with SIPp's contact.
func TestSippRegistersUsers(t *testing.T) {
	sipp := needTool(t, "sipp", "sip-tester")
	const users = 300
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{})
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := 0; i < users; i++ {
		fmt.Fprintf(&csv, "sippuser%04d;\n", i)
	}
	inf := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(inf, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	scenario, _ := filepath.Abs(filepath.Join("testdata", "sipp", "register.xml"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, addr, "-sf", scenario, "-inf", inf,
		"-m", fmt.Sprint(users), "-r", "200", "-l", "50", "-i", "127.0.0.1", "-p", "0",
		"-nostdin", "-timeout", "50s", "-trace_err", "-error_file", filepath.Join(dir, "errors.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp: %v\n%s\nerrors:\n%s", err, tail(out, 3000), tail(errs, 3000))
	}
	if n := s.Len(); n != users {
		t.Fatalf("%d bindings after %d SIPp REGISTERs", n, users)
	}
	b := s.Lookup("sip:sippuser0123@example.com", nil)
	if len(b) != 1 || !strings.HasPrefix(b[0].Contact, "sip:sippuser0123@127.0.0.1:") || b[0].UserAgent != "SIPp" {
		t.Fatalf("binding of sippuser0123: %+v", b)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
