package app_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/testenv"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
)

// Base B serves mutual TLS 1.3 only, and each method group admits only its
// callers: the gateway reads, baseb-export exports, baseb-loader writes.
// Only the gateway may name the partner's address.
func TestMutualTLSAndCallerGroups(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	delete(c.env, "BASEB_CLIENTS_READ")
	delete(c.env, "BASEB_CLIENTS_EXPORT")
	delete(c.env, "BASEB_CLIENTS_WRITE") // the defaults
	r := c.start()
	person := newCPF(901)
	token := func(scopes string) context.Context { return c.as(scopes) }

	// Plaintext: no answer at all, not even health.
	testenv.RequirePlaintextRefused(t, r.addr)
	// A certificate named "gateway" from another CA: refused in the handshake.
	f := testenv.NewCA(t).Issue("gateway")
	f.CA = c.issue("base-b-ca-holder").CA // trusts Base B's CA, presents the stranger's certificate
	forged := testenv.DialFiles(t, r.addr, f, "base-b")
	if _, err := basebv1.NewProfileServiceClient(forged).GetProfile(token("base-b:read"), &basebv1.GetProfileRequest{Cpf: person}); status.Code(err) != codes.Unavailable {
		t.Fatalf("unknown client certificate: %v (want refused)", err)
	}

	gw := basebv1.NewProfileServiceClient(c.dial(r.addr, "gateway"))
	loader := basebv1.NewProfileServiceClient(c.dial(r.addr, "baseb-loader"))
	export := basebv1.NewProfileServiceClient(c.dial(r.addr, "baseb-export"))
	stranger := basebv1.NewProfileServiceClient(c.dial(r.addr, "someone"))
	all := token("base-b:read base-b:write base-b:export")

	// Writes: the loader only.
	upsert := &basebv1.UpsertProfileRequest{Cpf: person, BirthDate: "1990-01-01",
		Address: &basebv1.Address{Street: "Rua A", Number: "1", City: "Recife", State: "PE", PostalCode: "50000000"}}
	for name, cl := range map[string]basebv1.ProfileServiceClient{"gateway": gw, "baseb-export": export, "someone": stranger} {
		if _, err := cl.UpsertProfile(all, upsert); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s wrote: %v", name, err)
		}
	}
	if _, err := loader.UpsertProfile(all, upsert); err != nil {
		t.Fatal(err)
	}
	// Reads: the gateway only; it alone may name the partner's address.
	for name, cl := range map[string]basebv1.ProfileServiceClient{"baseb-loader": loader, "baseb-export": export, "someone": stranger} {
		if _, err := cl.GetProfile(all, &basebv1.GetProfileRequest{Cpf: person}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s read: %v", name, err)
		}
	}
	// (It speaks for a partner, to which the token's client is bound.)
	withIP := metadata.AppendToOutgoingContext(all, "x-client-ip", "203.0.113.7", "x-partner-id", "bank-a", "x-partner-oauth-clients", "bank-a")
	if _, err := gw.GetProfile(withIP, &basebv1.GetProfileRequest{Cpf: person}); err != nil {
		t.Fatal(err)
	}
	waitAccessIP(t, c, person, "203.0.113.7")
	// Exports: baseb-export only.
	for name, cl := range map[string]basebv1.ProfileServiceClient{"gateway": gw, "baseb-loader": loader} {
		s, err := cl.ExportFeatures(all, &basebv1.ExportFeaturesRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s exported: %v", name, err)
		}
	}
	s, err := export.ExportFeatures(all, &basebv1.ExportFeaturesRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if err != nil {
		t.Fatalf("baseb-export: %v", err)
	}
}

// A caller that may read but is not trusted with metadata is recorded at
// its own address, whatever x-client-ip it sends.
func TestClientAddressTrustedOnlyFromTheGateway(t *testing.T) {
	t.Parallel()
	c := newCluster(t) // the tester may read but is not in CLIENTS_TRUSTED
	r, person := c.startSeeded(902)
	ctx := metadata.AppendToOutgoingContext(c.as("base-b:read"), "x-client-ip", "203.0.113.7")
	if _, err := r.client.GetProfile(ctx, &basebv1.GetProfileRequest{Cpf: person, ClientIp: "203.0.113.8"}); err != nil {
		t.Fatal(err)
	}
	waitAccessIP(t, c, person, "127.0.0.1")
}

func waitAccessIP(t *testing.T, c *cluster, person, want string) {
	t.Helper()
	var doc struct {
		LastAccess struct {
			ClientIP string `bson:"client_ip"`
		} `bson:"last_access"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := c.db.Collection("last_access").FindOne(testenv.Context(t), bson.M{"_id": person}).Decode(&doc)
		if err == nil && doc.LastAccess.ClientIP == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_access.client_ip = %q, want %q (%v)", doc.LastAccess.ClientIP, want, err)
		}
	}
}
