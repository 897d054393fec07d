package dialog

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleRecord() *record {
	r := &record{id: ID{"call@host", "ft"}, origin: "n1", toTag: "tt", state: Terminated,
		flags: flagAcked | flagReported, created: 1, answered: 2, ended: 3, maxDur: 4,
		reason: ReasonBye, code: 0, hungUp: PartyCallee, termBy: "n2", termEpoch: 7, adopt: 6, timerIdx: -1}
	r.addMember(membership{key: ProfileKey{"tenant", "acme"}})
	r.addMember(membership{key: ProfileKey{"all", ""}, removed: true})
	r.setVar(variable{key: "k", val: "v", clock: 3, node: "n1"})
	return r
}

func TestCodecRoundTrip(t *testing.T) {
	r := sampleRecord()
	msgs := [][]byte{appendRecordMsg(nil, r), appendTakeover(nil, "n3", 9), appendPing(nil),
		appendSyncReq(nil, 5), appendSyncEnd(nil, 5, 2), appendSyncAck(nil, 5, 3),
		appendRecord(appendRecord(appendSyncChunkHead(nil, 5, 2), r), r)}
	for _, b := range msgs {
		m, err := decode(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		for _, got := range m.records {
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
			}
		}
	}
	if m, _ := decode(msgs[1]); m.origin != "n3" || m.epoch != 9 {
		t.Fatalf("takeover %+v", m)
	}
	if m, _ := decode(msgs[4]); m.session != 5 || m.total != 2 {
		t.Fatalf("sync end %+v", m)
	}
}

func TestCodecRejects(t *testing.T) {
	good := appendRecordMsg(nil, sampleRecord())
	bad := map[string][]byte{
		"empty":     nil,
		"version":   {9, msgPing},
		"type":      {wireVersion, 77},
		"truncated": good[:len(good)-1],
		"trailing":  append(bytes.Clone(good), 0),
		"huge len":  {wireVersion, msgRecord, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	live := sampleRecord()
	live.state = Confirmed // terminated fields left set: inconsistent
	bad["reason on live dialog"] = appendRecordMsg(nil, live)
	for name, b := range bad {
		if _, err := decode(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// FuzzDecode: no input panics, and whatever decodes re-encodes to the
// same bytes and decodes again to the same message.
func FuzzDecode(f *testing.F) {
	r := sampleRecord()
	f.Add(appendRecordMsg(nil, r))
	f.Add(appendTakeover(nil, "n3", 9))
	f.Add(appendPing(nil))
	f.Add(appendSyncReq(nil, 5))
	f.Add(appendSyncEnd(nil, 5, 2))
	f.Add(appendSyncAck(nil, 5, 3))
	f.Add(appendRecord(appendSyncChunkHead(nil, 5, 1), r))
	f.Add([]byte{wireVersion, msgRecord, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error not ErrDecode: %v", err)
			}
			return
		}
		for _, r := range m.records {
			again, err := decode(appendRecordMsg(nil, r))
			if err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			if !reflect.DeepEqual(again.records[0], r) {
				t.Fatalf("round trip changed the record")
			}
		}
	})
}
