package app_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/base-b/app"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

// insertProfile writes a profile straight into the store (Base B's writes
// need a token of the test's own issuer).
func (c *cluster) insertProfile(person string) {
	c.t.Helper()
	if _, err := c.db.Collection("profiles").InsertOne(testenv.Context(c.t), bson.M{"_id": person, "birth_date": "1990-01-01",
		"assets": bson.A{}, "income_sources": bson.A{}, "updated_at": time.Now().UTC()}); err != nil {
		c.t.Fatal(err)
	}
}

// asGateway connects to a replica with the gateway's identity, the one
// trusted to speak for partners.
func (c *cluster) asGateway(r replica) replica {
	return replica{client: basebv1.NewProfileServiceClient(c.dial(r.addr, "gateway")), addr: r.addr}
}

// call reads a profile with a bearer token as the gateway sends it for a
// partner: x-partner-id and the OAuth2 clients bound to that partner.
func call(t *testing.T, r replica, person, token, partner, boundClients string) error {
	t.Helper()
	kv := []string{"authorization", "Bearer " + token}
	if partner != "" {
		kv = append(kv, "x-partner-id", partner, "x-partner-oauth-clients", boundClients)
	}
	ctx := metadata.AppendToOutgoingContext(testenv.Context(t), kv...)
	_, err := r.client.GetProfile(ctx, &basebv1.GetProfileRequest{Cpf: person})
	if err == nil {
		_, err = r.client.GetScore(ctx, &basebv1.GetScoreRequest{Cpf: person})
	}
	return err
}

func TestTokensAreBoundToTheirPartner(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.env["BASEB_CLIENTS_READ"] += ",scoring-job" // an internal reader, not trusted to speak for partners
	r, person := c.startSeeded(20)
	gw := c.asGateway(r)
	tok := c.issuer.Token(t, oidctest.Claims{Subject: "bank-a", Audience: audience, Scope: "base-b:read"})
	if err := call(t, gw, person, tok, "bank-a", "bank-a-old,bank-a"); err != nil {
		t.Fatalf("bound client: %v", err)
	}
	for name, md := range map[string][2]string{
		"another partner's key":         {"bank-b", "bank-b"},
		"partner with no clients bound": {"bank-b", ""},
		"gateway naming no partner":     {"", ""},
	} {
		if err := call(t, gw, person, tok, md[0], md[1]); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: want PermissionDenied, got %v", name, err)
		}
	}
	// An internal reader admitted by its own identity is no partner: the
	// partner it names is not believed, and no binding applies.
	job := replica{client: basebv1.NewProfileServiceClient(c.dial(r.addr, "scoring-job"))}
	if err := call(t, job, person, tok, "bank-b", "bank-b"); err != nil {
		t.Errorf("internal reader: %v", err)
	}
}

// Base B configured for a real third-party provider (zitadel/oidc's op)
// through its environment, as the launcher passes it.
func TestThirdPartyProviderEndToEnd(t *testing.T) {
	t.Parallel()
	t.Run("JWT access tokens without scope, aud = client id", func(t *testing.T) {
		t.Parallel()
		op := oidctest.StartOP(t, oidctest.OPOptions{TokenLifetime: 3 * time.Second})
		op.AddClient("bank-a-app", "secret-a")
		op.AddClient("bank-b-app", "secret-b")
		c := newCluster(t)
		c.env["BASEB_OIDC_ISSUER"] = op.URL
		c.env["BASEB_OIDC_AUDIENCE"] = "bank-a-app,bank-b-app"
		c.env["BASEB_OIDC_TOKEN_TYPES"] = "at+jwt,JWT"
		c.env["BASEB_OIDC_CLIENT_SCOPES"] = "bank-a-app=base-b:read;bank-b-app=base-b:read"
		c.env["BASEB_TOKEN_LEEWAY"] = "1s"
		r := c.asGateway(c.start())
		person := newCPF(21)
		c.insertProfile(person)
		tok := op.Token(t, "bank-a-app", "secret-a")
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); err != nil {
			t.Fatalf("bound client: %v", err)
		}
		if err := call(t, r, person, tok, "bank-b", "bank-b-app"); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("another partner's key: %v", err)
		}
		if err := call(t, r, person, op.IDToken(t, "bank-a-app", tok), "bank-a", "bank-a-app"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("ID token: %v", err)
		}
		// Outage: keys are cached, the token works until it expires, then fails closed.
		op.SetDown(true)
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); err != nil {
			t.Fatalf("provider down, token still valid: %v", err)
		}
		time.Sleep(4100 * time.Millisecond) // past exp and the 1 s leeway
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("expired token during the outage: %v", err)
		}
	})
	t.Run("opaque tokens by introspection", func(t *testing.T) {
		t.Parallel()
		op := oidctest.StartOP(t, oidctest.OPOptions{Opaque: true, Audience: []string{audience}, Scopes: true, TokenLifetime: 3 * time.Second})
		op.AddClient("bank-a-app", "secret-a")
		op.AddClient(audience, "introspection-secret")
		secretFile := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(secretFile, []byte("introspection-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := newCluster(t)
		c.env["BASEB_OIDC_ISSUER"] = op.URL
		c.env["BASEB_OIDC_INTROSPECTION"] = "auto"
		c.env["BASEB_OIDC_CLIENT_ID"] = audience
		c.env["BASEB_OIDC_CLIENT_SECRET_FILE"] = secretFile
		r := c.asGateway(c.start())
		person := newCPF(22)
		c.insertProfile(person)
		tok := op.Token(t, "bank-a-app", "secret-a", "base-b:read")
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); err != nil {
			t.Fatalf("bound client: %v", err)
		}
		if err := call(t, r, person, tok, "bank-b", "bank-b-app"); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("another partner's key: %v", err)
		}
		revoked := op.Token(t, "bank-a-app", "secret-a", "base-b:read")
		op.Revoke(t, "bank-a-app", "secret-a", revoked)
		if err := call(t, r, person, revoked, "bank-a", "bank-a-app"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("revoked token: %v", err)
		}
		op.SetDown(true)
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); err != nil {
			t.Fatalf("provider down, cached answer: %v", err)
		}
		uncached := "opaque-token-never-seen"
		if err := call(t, r, person, uncached, "bank-a", "bank-a-app"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("uncached token during the outage: %v", err)
		}
		time.Sleep(3100 * time.Millisecond)
		if err := call(t, r, person, tok, "bank-a", "bank-a-app"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("cached answer past the token's exp: %v", err)
		}
	})
}

// OIDC_CLIENT_SCOPES and AMQP_PRODUCERS are decoded by the configuration:
// a malformed value stops Base B at load with the variable's name.
func TestStructuredSettingsAreDecodedAtLoad(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"BASEB_MONGODB_URI": "mongodb://x", "BASEB_OIDC_ISSUER": "https://issuer.example",
		"BASEB_TLS_CERT": "c", "BASEB_TLS_KEY": "k", "BASEB_TLS_CA": "a", "BASEB_AMQP_URL": "amqp://x",
		"BASEB_OIDC_CLIENT_SCOPES": "bank-a-app = base-b:read base-b:export; bank-b-app=base-b:read",
	}
	cfg, err := app.Load(context.Background(), config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Verifier.ClientScopes["bank-a-app"], " ") != "base-b:read base-b:export" || !cfg.AMQPProducers.Admits("debt.summary.changed", "base-a") {
		t.Fatalf("decoded: %v %v", cfg.Verifier.ClientScopes, cfg.AMQPProducers)
	}
	for k, v := range map[string]string{
		"BASEB_OIDC_CLIENT_SCOPES": "BASEB_OIDC_CLIENT_SCOPES: client scopes must be CLIENT=SCOPE SCOPE;CLIENT2=SCOPE",
		"BASEB_AMQP_PRODUCERS":     `BASEB_AMQP_PRODUCERS: producers: "bank-a-app" is not type=user|user`,
	} {
		bad := maps.Clone(env)
		bad[k] = "bank-a-app"
		if _, err := app.Load(context.Background(), config.Map(bad)); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%s: want %q, got %v", k, v, err)
		}
	}
}
