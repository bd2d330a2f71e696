package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// SyntheticCPF is the i-th synthetic CPF (valid check digits) that
// `basea-seed` and `strata-local seed` give every base, so the three
// bases describe the same people. i must be below 800,000,000.
func SyntheticCPF(i int) string {
	return cpf.Complete(fmt.Sprintf("%09d", 100_000_000+i)).String()
}

// RunSeed adds the synthetic people 0..N-1 (flag -cpfs N) to Base A in
// bulk, 1,000 per statement, with a progress line on out. People already
// there are left as they are, so it can be run again.
func RunSeed(ctx context.Context, l config.Lookuper, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("basea-seed", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("cpfs", 0, "number of synthetic CPFs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 || *n > 100_000_000 {
		return errors.New("-cpfs must be between 1 and 100,000,000")
	}
	st, _, closeStore, err := openKeyedStore(ctx, l, "seed")
	if err != nil {
		return err
	}
	defer closeStore()
	const batch = 1000
	var added int64
	people := make([]store.SeedPerson, 0, batch)
	for start := 0; start < *n; start += batch {
		people = people[:0]
		for i := start; i < min(start+batch, *n); i++ {
			people = append(people, store.SeedPerson{CPF: SyntheticCPF(i), Name: fmt.Sprintf("Pessoa Sintética %d", i),
				Address: domain.Address{Street: "Rua Sintética", Number: fmt.Sprint(i % 9999), City: "São Paulo", State: "SP", PostalCode: "01010000"}})
		}
		k, err := st.SeedPeople(ctx, people)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		added += k
		done := min(start+batch, *n)
		fmt.Fprintf(out, "\rbase-a %s %d/%d", bar(done, *n), done, *n)
	}
	fmt.Fprintf(out, "\nbase-a: %d people added, %d already there\n", added, int64(*n)-added)
	return nil
}

// bar draws a 30-character progress bar.
func bar(done, total int) string {
	const w = 30
	k := done * w / max(total, 1)
	b := make([]byte, w)
	for i := range b {
		if i < k {
			b[i] = '#'
		} else {
			b[i] = '.'
		}
	}
	return "[" + string(b) + "]"
}
