// Package retry repeats start-up steps that can race between replicas
// starting together: index creation (two concurrent first-time collection
// creations may fail on FerretDB) and queue declarations.
package retry

import (
	"context"
	"time"
)

// Do runs fn up to attempts times, waiting 100 ms, 200 ms, ... between
// tries, and returns the last error.
func Do(ctx context.Context, attempts int, fn func(context.Context) error) error {
	var err error
	for i := range attempts {
		if err = fn(ctx); err == nil {
			return nil
		}
		if i == attempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(100*(i+1)) * time.Millisecond):
		}
	}
	return err
}
