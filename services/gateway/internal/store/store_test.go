package store_test

import (
	"errors"
	"testing"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
	"github.com/strata-bureau/strata/services/gateway/internal/store/storetest"
)

// An OAuth2 client id belongs to one partner at a time.
func TestOAuthClientBindings(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	st, _ := storetest.New(t)
	for _, p := range []string{"bank-a", "bank-b"} {
		if _, err := st.CreatePartner(ctx, p, p); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := st.BindOAuthClient(ctx, "bank-a", "app-1"); err != nil || b.PartnerID != "bank-a" || b.CreatedAt.IsZero() {
		t.Fatalf("bind: %+v %v", b, err)
	}
	if _, err := st.BindOAuthClient(ctx, "bank-a", "app-1"); err != nil {
		t.Fatalf("binding again to the same partner: %v", err)
	}
	if _, err := st.BindOAuthClient(ctx, "bank-b", "app-1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("binding another partner's client: %v", err)
	}
	if _, err := st.BindOAuthClient(ctx, "no-such-bank", "app-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown partner: %v", err)
	}
	if _, err := st.BindOAuthClient(ctx, "bank-a", "app-0"); err != nil {
		t.Fatal(err)
	}
	list, err := st.OAuthClients(ctx, "bank-a")
	if err != nil || len(list) != 2 || list[0].ClientID != "app-0" || list[1].ClientID != "app-1" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := st.UnbindOAuthClient(ctx, "bank-b", "app-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unbinding through the wrong partner: %v", err)
	}
	if err := st.UnbindOAuthClient(ctx, "bank-a", "app-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.BindOAuthClient(ctx, "bank-b", "app-1"); err != nil {
		t.Fatalf("rebinding a released client: %v", err)
	}
	if list, _ := st.OAuthClients(ctx, "bank-b"); len(list) != 1 || list[0].ClientID != "app-1" {
		t.Fatalf("bank-b: %+v", list)
	}
}
