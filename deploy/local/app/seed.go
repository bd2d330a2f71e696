package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/pki"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
)

// readShellEnv reads "export K='V'" lines.
func readShellEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[k] = strings.Trim(v, "'")
		}
	}
	return out, sc.Err()
}

// clientCredentials gets an access token from the built-in issuer.
func clientCredentials(ctx context.Context, issuer, id, secret, scope string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint answered %d", resp.StatusCode)
	}
	return body.AccessToken, nil
}

// seedBaseB writes the demo profile through Base B's API with a write
// token, as the internal writer baseb-loader (mTLS), once: a marker in
// dataDir records that it was done (the loader may write, not read).
func seedBaseB(ctx context.Context, dataDir, issuer, id, secret, addr string) error {
	marker := filepath.Join(dataDir, "secrets", "baseb-demo.seeded")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var tok string
	var err error
	for {
		tok, err = clientCredentials(ctx, issuer, id, secret, "base-b:read base-b:write")
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	certs, err := localPKI(dataDir)
	if err != nil {
		return err
	}
	tlsCfg, err := pki.ClientConfig(certs["baseb-loader"], "base-b")
	if err != nil {
		return err
	}
	conn, err := grpcclient.New(addr, grpcclient.Options{TLS: tlsCfg})
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	c := basebv1.NewProfileServiceClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	// Base B verifies tokens once it has discovered the issuer: retry a little.
	for {
		_, err = c.UpsertProfile(ctx, &basebv1.UpsertProfileRequest{Cpf: DemoCPF, BirthDate: "1984-07-12",
			Address: &basebv1.Address{Street: "Rua das Flores", Number: "123", Complement: "apto 45", District: "Centro", City: "São Paulo", State: "SP", PostalCode: "01010000"}})
		if err == nil || status.Code(err) == codes.PermissionDenied || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if _, err := c.AddIncomeSource(ctx, &basebv1.AddIncomeSourceRequest{Cpf: DemoCPF, IncomeSource: &basebv1.IncomeSource{
		Kind: basebv1.IncomeKind_INCOME_KIND_SALARY, MonthlyAmountCents: 850000, Currency: "BRL", Since: "2019-03-01"}}); err != nil {
		return err
	}
	if _, err := c.AddAsset(ctx, &basebv1.AddAssetRequest{Cpf: DemoCPF, Asset: &basebv1.Asset{
		Kind: basebv1.AssetKind_ASSET_KIND_VEHICLE, Description: "Hatch 2021", ValueCents: 6500000, Currency: "BRL"}}); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte("done\n"), 0o600)
}
