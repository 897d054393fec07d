package vip_test

import (
	"os"
	"testing"
)

// childEnv, when set, makes the test binary run one cluster node (see
// child_linux_test.go) instead of the tests: the namespace tests start
// each node as its own process so that SIGKILL and a cut link are real.
const childEnv = "SIPHA_VIP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}
