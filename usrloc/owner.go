package usrloc

import "github.com/sipha/sipha/ownership"

// ManagerOwner adapts an ownership.Manager to the pinger's Owner: this node
// owns a socket's resource exactly while the ownership layer says it holds
// it (committed to it and under a valid lease), so when ownership moves the
// old owner stops pinging before the new one starts. Watch follows the
// resources whose names start with prefix; "" means "socket/", the
// pinger's default naming.
func ManagerOwner(m ownership.Manager, prefix string) Owner {
	if prefix == "" {
		prefix = "socket/"
	}
	return managerOwner{m: m, prefix: prefix}
}

type managerOwner struct {
	m      ownership.Manager
	prefix string
}

func (o managerOwner) Owns(resource string) bool {
	_, ok := o.m.Held(resource)
	return ok
}

func (o managerOwner) Watch(fn func()) (stop func()) {
	return o.m.Watch(o.prefix, func(e ownership.Event) {
		if e.Kind != ownership.Moved { // Acquired and Lost change what this node holds
			fn()
		}
	})
}
