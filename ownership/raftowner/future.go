package raftowner

import (
	"reflect"

	"github.com/hashicorp/raft"
)

// await waits for a raft future, or until the node closes.
//
// hashicorp/raft's futures can stay unresolved forever when raft shuts down
// or loses leadership at the wrong moment (hashicorp/raft#498; seen here
// with VerifyLeader), and Error() then blocks for good. raft's own remedy,
// the ShutdownCh field its futures embed, is set only for its snapshot
// futures; await sets it to the node's quit channel before waiting, so
// Error() returns ErrRaftShutdown once Close begins. TestAwaitSetsShutdownCh
// pins this to the raft version in go.mod.
func (n *Node) await(f raft.Future) error {
	setShutdownCh(f, n.quit)
	return f.Error()
}

// setShutdownCh sets f's ShutdownCh to ch unless raft set one; it reports
// whether f now has one. Futures that are already resolved (raft's
// errorFuture values) have no field and need none.
func setShutdownCh(f raft.Future, ch chan struct{}) bool {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false
	}
	fld := v.Elem().FieldByName("ShutdownCh")
	if !fld.IsValid() || !fld.CanSet() || fld.Type() != reflect.TypeOf(ch) {
		return false
	}
	if fld.IsNil() {
		fld.Set(reflect.ValueOf(ch))
	}
	return true
}
