package platform

import (
	"fmt"
	"os"
	"strings"
)

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
