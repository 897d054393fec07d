package proxy

import (
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/dialog"
)

// callTracker is what the proxy tells about each call: the dialog tracker,
// or untracked when Config.NoCallTracking turns tracking off.
type callTracker interface {
	Invite(req *sip.Request) (dialog.ID, error)
	AddProfile(id dialog.ID, profile, value string) error
	Reject(id dialog.ID, code int) error
	Response(res *sip.Response) (dialog.ID, bool)
	Request(req *sip.Request) (dialog.ID, bool)
}

// untracked forgets every call: no dialog, no profile count, no CDR. It is
// the baseline that measures what tracking costs (regbench -calls).
type untracked struct{}

func (untracked) Invite(*sip.Request) (dialog.ID, error)     { return dialog.ID{}, nil }
func (untracked) AddProfile(dialog.ID, string, string) error { return nil }
func (untracked) Reject(dialog.ID, int) error                { return nil }
func (untracked) Response(*sip.Response) (dialog.ID, bool)   { return dialog.ID{}, false }
func (untracked) Request(*sip.Request) (dialog.ID, bool)     { return dialog.ID{}, false }
