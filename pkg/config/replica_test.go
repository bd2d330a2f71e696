package config_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
)

type replicated struct {
	config.Replica
}

func (r *replicated) Validate() error { return errors.Join(config.Errors(&r.Replica)...) }

// A replica id is taken as given when valid, refused when not, and
// defaulted (host name and process id) when unset or empty.
func TestReplicaIDGivenRefusedOrDefaulted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     map[string]string
		want    string
		refused bool
	}{
		{env: map[string]string{"X_REPLICA_ID": "base-b-1"}, want: "base-b-1"},
		{env: map[string]string{"X_REPLICA_ID": "a/b"}, refused: true},
		{env: map[string]string{"X_REPLICA_ID": strings.Repeat("r", 65)}, refused: true},
		{env: map[string]string{"X_REPLICA_ID": ""}, want: config.DefaultReplicaID()},
		{env: map[string]string{}, want: config.DefaultReplicaID()},
	} {
		var c replicated
		err := config.Load(context.Background(), "X_", &c, config.Map(tc.env))
		if tc.refused {
			if err == nil || !strings.Contains(err.Error(), "REPLICA_ID") {
				t.Errorf("%v: want REPLICA_ID refused, got %v", tc.env, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		c.Default()
		if c.ReplicaID != tc.want || !config.ValidReplicaID(c.ReplicaID) {
			t.Errorf("%v: replica id %q, want %q", tc.env, c.ReplicaID, tc.want)
		}
	}
}
