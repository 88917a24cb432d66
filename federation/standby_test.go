package federation

import (
	"bytes"
	"testing"

	"github.com/vipsmart/vipsmart"
)

func TestStandbyHeartbeats(t *testing.T) {
	d1, d2, d3 := authDC(1), authDC(2), authDC(3)
	last := &Decision{FedID: "f-1", FromEpoch: 2, ToEpoch: 3, OpID: "op-3", Coordinator: d1.Name, Change: Change{Kind: DeleteGIP, Name: "www"}}
	h := hardState{Version: recordVersion, Self: d1, Status: vipsmart.StatusMember, FedID: "f-1", Epoch: 3, Members: []vipsmart.DC{d1, d2, d3}, Last: last}
	rec := h.encode()
	orig := bytes.Clone(rec)
	// Another node of dc-1: another address, the same key.
	node := d1
	node.Port = 9700
	rep := &Report{VIPsDown: []string{"web"}}
	msgs, err := StandbyHeartbeats(rec, node, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec, orig) {
		t.Fatal("the record was changed")
	}
	if len(msgs) != 2 || msgs[0].To.Name != d2.Name || msgs[1].To.Name != d3.Name {
		t.Fatalf("heartbeats to %v, want dc-2 and dc-3", msgs)
	}
	for _, m := range msgs {
		if m.Type != MsgHeartbeat || !m.From.SameEndpoint(node) || m.FedID != "f-1" || m.Epoch != 3 || m.SenderFed != "f-1" || m.SenderEpoch != 3 ||
			m.Status != vipsmart.StatusMember || m.Last == nil || m.Last.OpID != "op-3" || m.Report == nil || m.Report.VIPsDown[0] != "web" {
			t.Fatalf("heartbeat %+v", m)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("heartbeat does not validate: %v", err)
		}
	}
	msgs[0].Report.VIPsDown[0] = "x"
	if rep.VIPsDown[0] != "web" {
		t.Fatal("the report is shared, not copied")
	}

	// A DC in no federation, of another name, or without a record: none.
	h.FedID, h.Status, h.Members = "", vipsmart.StatusStandalone, nil
	for _, rec := range [][]byte{h.encode(), nil} {
		if msgs, err := StandbyHeartbeats(rec, node, rep); err != nil || len(msgs) != 0 {
			t.Fatalf("standalone: %v %v", msgs, err)
		}
	}
	if msgs, err := StandbyHeartbeats(orig, d2, rep); err != nil || len(msgs) != 0 {
		t.Fatalf("another DC's record: %v %v", msgs, err)
	}
	if _, err := StandbyHeartbeats([]byte("{"), node, rep); err == nil {
		t.Fatal("a corrupt record was accepted")
	}
}
