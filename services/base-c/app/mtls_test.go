package app_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/testenv"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
)

// Base C serves mutual TLS 1.3 only; the gateway reads activity, only the
// account tool's identity manages accounts, and anyone else is refused
// before a password is hashed.
func TestMutualTLSAndCallerGroups(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	delete(c.env, "BASEC_CLIENTS_READ")
	delete(c.env, "BASEC_CLIENTS_ACCOUNTS") // the defaults
	r := c.start("mtls")
	ctx := testenv.Context(t)
	admin := as(ctx, adminUser, adminPass)

	testenv.RequirePlaintextRefused(t, r.addr)
	// A "gateway" certificate from another CA is refused in the handshake.
	stranger := testenv.NewCA(t).Issue("gateway")
	stranger.CA = c.ca.Issue("unused").CA
	forged := testenv.DialFiles(t, r.addr, stranger, "base-c")
	if _, err := basecv1.NewActivityServiceClient(forged).GetActivity(admin, &basecv1.GetActivityRequest{Cpf: "52998224725"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("unknown client certificate: %v (want refused)", err)
	}

	gw := c.ca.Dial(r.addr, "gateway", "base-c")
	tool := c.ca.Dial(r.addr, "basec-admin", "base-c")
	someone := c.ca.Dial(r.addr, "someone", "base-c")
	create := &basecv1.CreateAccountRequest{Username: "new-partner", Password: "a-long-enough-password"}
	if _, err := basecv1.NewAccountServiceClient(gw).CreateAccount(admin, create); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the gateway managed accounts: %v", err)
	}
	if _, err := basecv1.NewAccountServiceClient(someone).CreateAccount(admin, create); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("an unlisted identity managed accounts: %v", err)
	}
	if _, err := basecv1.NewAccountServiceClient(tool).CreateAccount(admin, create); err != nil {
		t.Fatalf("basec-admin: %v", err)
	}
	read := &basecv1.GetActivityRequest{Cpf: "52998224725"}
	for name, conn := range map[string]basecv1.ActivityServiceClient{"basec-admin": basecv1.NewActivityServiceClient(tool), "someone": basecv1.NewActivityServiceClient(someone)} {
		if _, err := conn.GetActivity(admin, read); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s read activity: %v", name, err)
		}
	}
	if _, err := basecv1.NewActivityServiceClient(gw).GetActivity(admin, read); err != nil && status.Code(err) != codes.NotFound {
		t.Fatalf("the gateway could not read: %v", err)
	}
}
