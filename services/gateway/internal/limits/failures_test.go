package limits

import (
	"fmt"
	"testing"
	"time"
)

func TestFailuresBlockThenDecay(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	f := NewFailures(3, 60) // 3 at once, then one a second
	f.now = func() time.Time { return now }
	for range 3 {
		if _, blocked := f.Blocked("203.0.113.7"); blocked {
			t.Fatal("blocked before its budget was used")
		}
		f.Fail("203.0.113.7")
	}
	wait, blocked := f.Blocked("203.0.113.7")
	if !blocked || wait <= 0 || wait > time.Second {
		t.Fatalf("want blocked about a second, got %v %s", blocked, wait)
	}
	if _, blocked := f.Blocked("198.51.100.1"); blocked {
		t.Fatal("another source was blocked")
	}
	now = now.Add(1100 * time.Millisecond)
	if _, blocked := f.Blocked("203.0.113.7"); blocked {
		t.Fatal("the counter did not decay")
	}
}

// An IPv6 client rotating through addresses of its own /64 shares one
// budget (each new address used to start a fresh one); a client in
// another /64 keeps its own.
func TestFailuresKeyAnIPv6ClientOnItsSlashSixtyFour(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	f := NewFailures(3, 1)
	f.now = func() time.Time { return now }
	for i := range 3 {
		f.Fail(fmt.Sprintf("2001:db8:aa:bb::%x", i+1))
	}
	if _, blocked := f.Blocked("2001:db8:aa:bb:1234:5678:9abc:def0"); !blocked {
		t.Fatal("a new address in the same /64 got a fresh budget")
	}
	if _, blocked := f.Blocked("2001:db8:aa:bc::1"); blocked {
		t.Fatal("another /64 was blocked")
	}
}
