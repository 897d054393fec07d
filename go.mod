module github.com/sipha/sipha

go 1.26.0

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/emiago/sipgo v1.7.2
	github.com/icholy/digest v1.2.0
	github.com/miekg/dns v1.1.73
	go.etcd.io/bbolt v1.3.5
	golang.org/x/net v0.57.0
	golang.org/x/sync v0.24.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
