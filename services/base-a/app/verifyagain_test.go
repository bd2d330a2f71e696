package app_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// Between checkpoints the log runs ahead of its newest signed head (every
// verify run is itself audited), so the tree a verifier keeps is larger
// than the newest head. Running strata-audit verify again — the README's
// tour does — must not call that a rollback: only a newest head older than
// the newest head already verified is one.
func TestVerifyAgainBetweenCheckpointsIsNotARollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr, stop := e.start()
	gw := e.people(addr, "gateway")
	seed(t, e.people(addr, "basea-loader"))
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	ctx := testenv.Context(t)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		h, err := e.auditor(addr).GetHead(ctx, &baseav1.GetHeadRequest{})
		if err == nil && h.GetSize() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed head: %v", err)
		}
	}
	// No new head from here on: the log grows past the newest head.
	stop()
	e.vars["BASEA_CHECKPOINT_INTERVAL"] = "1h"
	addr, _ = e.start()
	gw = e.people(addr, "gateway")
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	state := filepath.Join(t.TempDir(), "verified-head.json")
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // the chainer links what committed
		if code, v, errOut := e.cli(addr, state, "verify"); code != 0 || !v.OK {
			t.Fatalf("verify run %d: exit %d %+v %s", i+1, code, v, errOut)
		}
	}
}
