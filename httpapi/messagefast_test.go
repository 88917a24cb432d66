package httpapi

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// libraryMessage is what decode and decodeReply read before
// messagefast.go: ok is false where they refused the body.
func libraryMessage(data []byte) (federation.Message, bool) {
	var m federation.Message
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || dec.More() {
		return m, false
	}
	return m, true
}

// wireMessages are messages of each kind as daemons send them (encoded
// by json.Marshal, as PeerClient and peerReply do).
func wireMessages() []federation.Message {
	key := func(s string) string { return "sha256:" + strings.Repeat(s, 64) }
	dc := func(n int) vipsmart.DC {
		return vipsmart.DC{Name: "dc-" + string(rune('0'+n)), Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(n)}), Port: 9610, Identity: key(string(rune('0' + n)))}
	}
	d1, d2 := dc(1), dc(2)
	d3 := dc(3)
	d3.Witness = true
	d3.Nodes = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.3:9611"), netip.MustParseAddrPort("[2001:db8::3]:9611")}
	g := &vipsmart.GIP{Name: "bench", Address: netip.MustParseAddr("203.0.113.7"), Mode: vipsmart.ModeFailover, Preempt: true,
		Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100, VIP: "web"}}, Partition: vipsmart.PartitionConsistent}
	last := &federation.Decision{FedID: "f-dc-1-1", FromEpoch: 7, ToEpoch: 8, OpID: "dc-1-9", Coordinator: "dc-1", Change: federation.Change{Kind: federation.PutGIP, GIP: g}, Seq: 9}
	founding := &federation.Decision{FedID: "f-dc-1-1", FromEpoch: 1, ToEpoch: 2, OpID: "dc-1-1", Coordinator: "dc-1", Tomb: true, Members: []vipsmart.DC{d1, d2, d3},
		Change: federation.Change{Kind: federation.AddDC, DC: &d2, Founder: &d1, NewFedID: "f-dc-1-1", By: "uid 0", Names: []string{"a", "b"}, Force: true, Name: "x"}}
	base := func(t federation.MsgType, from, to vipsmart.DC) federation.Message {
		return federation.Message{Type: t, From: from, To: to, FedID: "f-dc-1-1", Epoch: 7, Status: vipsmart.StatusMember, SenderEpoch: 7, SenderFed: "f-dc-1-1", Seq: 9, Committed: 8}
	}
	hb := base(federation.MsgHeartbeat, d1, d2)
	hb.Last, hb.Founding = last, founding
	hb.Report = &federation.Report{VIPsDown: []string{"web"}, Holding: []string{"bench"}, VIPsUnknown: []string{}}
	hb.Quorum = &federation.QuorumBeat{Boot: 1764140000123456789, Stamp: 987654321, EchoBoot: -5, Echo: 1234, Supports: true, Lost: []string{"dc-4"}, Claims: []string{"bench"}}
	hbr := base(federation.MsgHeartbeatResp, d2, d1)
	hbr.Report = &federation.Report{}
	hbr.Quorum = &federation.QuorumBeat{Boot: 1, Stamp: 2}
	lock := base(federation.MsgLock, d1, d2)
	lock.OpID, lock.ToEpoch, lock.Running, lock.Status = "dc-1-10", 8, true, vipsmart.StatusCandidateReview
	lock.Change = &federation.Change{Kind: federation.PutGIP, GIP: g}
	del := lock
	del.Change = &federation.Change{Kind: federation.DeleteGIP, Name: "bench"}
	lockResp := base(federation.MsgLockResp, d2, d1)
	lockResp.OpID, lockResp.OK = "dc-1-10", true
	refused := lockResp
	refused.OK, refused.Code, refused.Reason, refused.KnownSeq = false, vipsmart.EBUSY, "dc-2 is locked by operation dc-3-4 until 12:00:00", 12
	commit := base(federation.MsgCommit, d1, d2)
	commit.OpID, commit.Epoch, commit.Last = "dc-1-10", 8, last
	invite := base(federation.MsgInvite, d1, d3)
	invite.OpID, invite.Token, invite.Members = "dc-1-11", "vsj1.abc-def_0123", []vipsmart.DC{d1, d2}
	invite.Change = &federation.Change{Kind: federation.AddDC, DC: &d3}
	return []federation.Message{hb, hbr, lock, del, lockResp, refused, commit, invite}
}

// messageSeeds are bodies the fast read must hand to encoding/json (or
// read as it does): edge cases of each kind.
var messageSeeds = []string{
	`{"type":"heartbeat","from":{"name":"dc-1","address":"127.0.0.1","port":1},"to":{"name":"dc-2"}}`,
	`{"type":"heartbeat","Type":"lock"}`,
	`{"TYPE":"heartbeat"}`,
	`{"type":"heartbeat","type":"lock"}`,
	`{"type":"heart\u0062eat"}`,
	`{"type":"é"}`,
	`{"type":null}`,
	`{"from":null}`,
	`{"change":null}`,
	`{"change":{"kind":"put-gip","gip":null}}`,
	`{"change":{"kind":"apply-gips","batch":{"count":0,"digest":"x"}}}`,
	`{"state":{"fed_id":"f","epoch":1,"members":[],"gips":[]}}`,
	`{"doubts":[]}`,
	`{"epoch":-1}`, `{"epoch":1.0}`, `{"epoch":1e3}`, `{"epoch":01}`, `{"epoch":18446744073709551615}`, `{"epoch":18446744073709551616}`,
	`{"from":{"port":65535}}`, `{"from":{"port":65536}}`, `{"from":{"port":-0}}`,
	`{"quorum":{"boot":-0,"stamp":9223372036854775807,"echo":-9223372036854775808}}`, `{"quorum":{"stamp":9223372036854775808}}`,
	`{"from":{"address":""}}`, `{"from":{"address":"1.2.3"}}`, `{"from":{"address":"::ffff:1.2.3.4"}}`, `{"from":{"address":"fe80::1%eth0"}}`, `{"from":{"address":7}}`,
	`{"from":{"nodes":[]}}`, `{"from":{"nodes":null}}`, `{"from":{"nodes":[""]}}`, `{"from":{"nodes":["1.2.3.4"]}}`, `{"from":{"nodes":["1.2.3.4:70000"]}}`,
	`{"report":{}}`, `{"report":{"holding":[]}}`, `{"report":{"holding":null}}`, `{"report":{"holding":[null]}}`, `{"report":[]}`,
	`{"ok":true}{}`, `{"ok":true}]`, `{"ok":true}}`, `{"ok":true`, `{"ok":true,}`, `{"ok":truex}`, `{,}`, `{}`, `null`, `[]`, ``, ` { "ok" : false } ` + "\n",
	`{"last":{"change":{}}}`, `{"last":{"members":[{"name":"a","bogus":1}]}}`, `{"change":{"gip":{"name":"g","placements":[{"dc":"a","priority":1.5}]}}}`,
	`{"reason":"a \"quoted\" reason"}`, `{"token":"x\ty"}`,
}

// checkMessageFast: where the fast read succeeds, encoding/json reads the
// same body into the same message. It reports whether the fast read did.
func checkMessageFast(t *testing.T, data []byte) bool {
	t.Helper()
	return checkFastRead(t, data, func(m *federation.Message) bool { return decodeMessageFast(data, m) }, libraryMessage)
}

// TestMessageFastIsTheLibrarys: where the fast read of a federation
// message succeeds, encoding/json reads the same body into the same
// message; the messages daemons exchange during a gip add, a dc add and
// at rest are all read fast.
func TestMessageFastIsTheLibrarys(t *testing.T) {
	for _, m := range wireMessages() {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !checkMessageFast(t, b) {
			t.Errorf("a %s as daemons send it is not read fast: %s", m.Type, b)
		}
	}
	fast := 0
	for _, s := range messageSeeds {
		if checkMessageFast(t, []byte(s)) {
			fast++
		}
	}
	if fast == 0 || fast == len(messageSeeds) {
		t.Errorf("%d of %d edge cases read fast: the seeds do not exercise both ways", fast, len(messageSeeds))
	}
}

// FuzzPeerMessage: the fast read of federation messages (requests and the
// answers riding back) never reads anything encoding/json would not read
// the same way.
func FuzzPeerMessage(f *testing.F) {
	for _, m := range wireMessages() {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMessageFast(t, data)
	})
}

// BenchmarkMessageDecode: a heartbeat, a lock of gip add and a commit,
// read by encoding/json (as before) and by the fast read.
func BenchmarkMessageDecode(b *testing.B) {
	ms := wireMessages()
	for _, i := range []int{0, 2, 6} {
		data, _ := json.Marshal(ms[i])
		b.Run(string(ms[i].Type)+"/library", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := libraryMessage(data); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(string(ms[i].Type)+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m federation.Message
				if !decodeMessageFast(data, &m) {
					b.Fatal("not read fast")
				}
			}
		})
	}
}
