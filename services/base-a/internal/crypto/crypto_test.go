package crypto_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
)

func TestRotationReadsOldWritesNew(t *testing.T) {
	t.Parallel()
	k1, k2, idx := crypto.NewKey(), crypto.NewKey(), crypto.NewKey()
	old, err := crypto.ParseKeys("1:"+k1, idx)
	if err != nil {
		t.Fatal(err)
	}
	ct := old.Encrypt([]byte("Maria da Silva"), []byte("people.name|x"))
	both, err := crypto.ParseKeys("1:"+k1+",2:"+k2, idx)
	if err != nil {
		t.Fatal(err)
	}
	pt, ver, err := both.Decrypt(ct, []byte("people.name|x"))
	if err != nil || ver != 1 || string(pt) != "Maria da Silva" {
		t.Fatalf("old ciphertext unreadable after adding a key: %q v%d %v", pt, ver, err)
	}
	if _, v, _ := both.Decrypt(both.Encrypt([]byte("x"), nil), nil); v != 2 {
		t.Fatalf("new data written with key %d, want 2", v)
	}
	if _, _, err := both.Decrypt(ct, []byte("people.name|y")); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("ciphertext moved to another row decrypted: %v", err)
	}
	onlyNew, _ := crypto.ParseKeys("2:"+k2, idx)
	if _, _, err := onlyNew.Decrypt(ct, []byte("people.name|x")); !errors.Is(err, crypto.ErrUnknownKey) {
		t.Fatalf("want ErrUnknownKey once key 1 is retired, got %v", err)
	}
	if !bytes.Equal(old.BlindIndex("cpf", "52998224725"), both.BlindIndex("cpf", "52998224725")) {
		t.Fatal("blind index changed with the data keys")
	}
	if bytes.Equal(old.BlindIndex("cpf", "52998224725"), old.BlindIndex("contract", "52998224725")) {
		t.Fatal("blind index labels collide")
	}
}

func TestParseKeysRejectsBadInput(t *testing.T) {
	t.Parallel()
	idx := crypto.NewKey()
	for _, keys := range []string{"", "abc", "0:" + crypto.NewKey(), "1:c2hvcnQ=", "x:" + crypto.NewKey(), "1:" + crypto.NewKey() + ",1:" + crypto.NewKey()} {
		if _, err := crypto.ParseKeys(keys, idx); err == nil {
			t.Errorf("accepted data keys %q", keys)
		}
	}
	if _, err := crypto.ParseKeys("1:"+crypto.NewKey(), "c2hvcnQ="); err == nil {
		t.Error("accepted a short index key")
	}
}
