package vipsmart

import (
	"context"
	"testing"
)

func TestAfterAnswer(t *testing.T) {
	if AfterAnswer(context.Background(), func() {}) {
		t.Fatal("registered without a request to wait for")
	}
	ctx, a := WithAnswered(context.Background())
	if a.Pending() {
		t.Fatal("pending before anything was registered")
	}
	runs := 0
	if !AfterAnswer(ctx, func() { runs++ }) || !a.Pending() {
		t.Fatal("not registered")
	}
	if runs != 0 {
		t.Fatal("ran before Done")
	}
	a.Done()
	a.Done()
	if runs != 1 {
		t.Fatalf("ran %d times; want once", runs)
	}
	if AfterAnswer(ctx, func() { runs++ }) || runs != 1 {
		t.Fatal("registered after the answer was sent")
	}
}
