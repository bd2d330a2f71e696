package retry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/strata-bureau/strata/pkg/retry"
)

func TestDo(t *testing.T) {
	t.Parallel()
	calls := 0
	err := retry.Do(context.Background(), 3, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("succeeded on the third try? err=%v calls=%d", err, calls)
	}
	calls = 0
	boom := errors.New("boom")
	if err := retry.Do(context.Background(), 2, func(context.Context) error { calls++; return boom }); !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("gave up wrongly: %v after %d calls", err, calls)
	}
}
