package platform_test

import (
	"net"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/platform"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// serve gets both listeners, on the addresses asked for; when the second
// cannot listen, the first is closed again and serve never runs.
func TestListenAndServeHandsOverBothOrNeither(t *testing.T) {
	t.Parallel()
	addr, opsAddr := freeAddr(t), freeAddr(t)
	err := platform.ListenAndServe(addr, opsAddr, func(lis, opsLis net.Listener) error {
		defer func() { _ = lis.Close(); _ = opsLis.Close() }()
		if lis.Addr().String() != addr || opsLis.Addr().String() != opsAddr {
			t.Errorf("listening on %s and %s, want %s and %s", lis.Addr(), opsLis.Addr(), addr, opsAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	first := freeAddr(t)
	err = platform.ListenAndServe(first, busy.Addr().String(), func(_, _ net.Listener) error {
		t.Error("served without its operator listener")
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("want the operator address's listen error, got %v", err)
	}
	again, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatalf("the first listener was left open: %v", err)
	}
	_ = again.Close()
}
