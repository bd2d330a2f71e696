package grpcapi

import "testing"

func FuzzPageToken(f *testing.F) {
	f.Add(encodeToken(42))
	f.Add("")
	f.Add("LTE")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := decodeToken(tok)
		if err == nil && id <= 0 {
			t.Fatalf("accepted a non-positive position from %q", tok)
		}
		if err == nil && encodeToken(id) == "" {
			t.Fatal("round trip lost the token")
		}
	})
}
