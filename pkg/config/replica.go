package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Replica is the part of a service that runs several replicas, each with
// its own broadcast queue (Base B and C).
type Replica struct {
	// ReplicaID names this replica's broadcast queue and broker
	// connection; empty, the service's Load gives it the default.
	ReplicaID string `env:"REPLICA_ID"`
}

// Validate checks a replica id that was given; each replicated service's
// Validate calls it.
func (r *Replica) Validate() error {
	if r.ReplicaID != "" && !ValidReplicaID(r.ReplicaID) {
		return errors.New("REPLICA_ID must be 1-64 letters, digits and . _ @ -")
	}
	return nil
}

// Default gives a replica that was given no id DefaultReplicaID().
func (r *Replica) Default() {
	if r.ReplicaID == "" {
		r.ReplicaID = DefaultReplicaID()
	}
}

// DefaultReplicaID names a replica that was given no id: its host name
// (anything but letters, digits and - replaced by -) and process id.
func DefaultReplicaID() string {
	host, _ := os.Hostname()
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, host) + fmt.Sprintf("-%d", os.Getpid())
}

// ValidReplicaID accepts 1–64 characters of [A-Za-z0-9._@-]: a replica id
// names its broadcast queue and its broker connection.
func ValidReplicaID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return false
		}
	}
	return true
}
