package limits

import "testing"

func TestConcurrencyLeavesRoomForOthers(t *testing.T) {
	t.Parallel()
	c := NewConcurrency(4, 2)
	var held []func()
	for range 2 {
		rel, _, ok := c.Acquire("hostile")
		if !ok {
			t.Fatal("hostile refused within its share")
		}
		held = append(held, rel)
	}
	if _, keyFull, ok := c.Acquire("hostile"); ok || !keyFull {
		t.Fatal("a partner took more than its share")
	}
	for range 2 {
		if _, _, ok := c.Acquire("good"); !ok {
			t.Fatal("another partner found no room")
		}
	}
	if _, keyFull, ok := c.Acquire("third"); ok || keyFull {
		t.Fatal("total cap not applied")
	}
	held[0]()
	held[0]() // releasing twice is harmless
	if _, _, ok := c.Acquire("hostile"); !ok {
		t.Fatal("a released slot was not reusable")
	}
}
