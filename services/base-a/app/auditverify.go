package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/strata-bureau/strata/pkg/checkpoint"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/grpcapi"
)

// verdict is what strata-audit verify prints.
type verdict struct {
	OK                  bool   `json:"ok"`
	CheckedEntries      int64  `json:"checked_entries"`
	FirstBadEntry       int64  `json:"first_bad_entry"`
	Problem             string `json:"problem,omitempty"`
	CheckpointsVerified int64  `json:"checkpoints_verified"`
	HeadsVerified       int64  `json:"heads_verified"`
	PurgedThrough       int64  `json:"purged_through"`
	TreeSize            int64  `json:"tree_size"`
	GrantsChecked       int64  `json:"grants_checked"`
}

func (v *verdict) fail(seq int64, problem string) {
	if v.OK || (seq > 0 && seq < v.FirstBadEntry) {
		v.OK, v.FirstBadEntry, v.Problem = false, seq, problem
	}
}

func printVerdict(v verdict, stdout, stderr io.Writer) int {
	out, _ := json.Marshal(v)
	fmt.Fprintln(stdout, string(out))
	if !v.OK {
		fmt.Fprintf(stderr, "strata-audit: TAMPERING DETECTED at entry seq %d: %s\n", v.FirstBadEntry, v.Problem)
		return 1
	}
	return 0
}

// readKey reads a verifier key given inline or as a file.
func readKey(k string) (note.Verifier, error) {
	k = strings.TrimSpace(k)
	if k == "" {
		return nil, errors.New("a verifier key is required (STRATA_AUDIT_VERIFIER_KEY or -public-key)")
	}
	if b, err := os.ReadFile(k); err == nil {
		k = strings.TrimSpace(string(b))
	}
	v, err := checkpoint.NewVerifier(k)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return v, nil
}

// pageVerifier runs pages of an exported log through audit.LogVerifier.
type pageVerifier struct {
	key     note.Verifier
	start   audit.State
	extra   [][2]string // heads from witnesses: note (base64), source
	trusted []audit.State
	lv      *audit.LogVerifier
	v       verdict
}

func (p *pageVerifier) page(r *baseav1.ExportLogResponse) bool {
	if p.lv == nil {
		st := p.start
		if st.Size == 0 && r.GetAnchorSize() > 0 {
			// The log starts after a retention purge: at the signed head
			// of the anchor, whose edge hashes must hash to its root.
			st = audit.State{Size: r.GetAnchorSize(), Edge: map[int64]tlog.Hash{}}
			found := false
			for _, n := range r.GetHeads() {
				if h, err := audit.OpenHead(n, p.key); err == nil && h.Size == st.Size {
					st.Root, found = h.Root, true
				}
			}
			for _, e := range r.GetAnchorEdge() {
				var x tlog.Hash
				copy(x[:], e.GetHash())
				st.Edge[e.GetIndex()] = x
			}
			p.v.PurgedThrough = st.Size
			if !found {
				p.v.fail(st.Size, "the signed head the log restarts from after a purge is missing")
				return false
			}
		}
		lv, err := audit.NewLogVerifier(p.key, st)
		if err != nil {
			p.v.fail(st.Size+1, err.Error())
			return false
		}
		p.lv = lv
		for _, t := range p.trusted {
			lv.AddTrustedHead(t.Size, t.Root, "the last verified head")
		}
		for _, h := range p.extra {
			raw, err := base64.StdEncoding.DecodeString(h[0])
			if err != nil {
				p.v.fail(st.Size+1, "a witnessed head is not base64: "+h[1])
				return false
			}
			if _, err := lv.AddHead(raw, h[1]); err != nil {
				return false // the verifier names the entry
			}
		}
	}
	for _, n := range r.GetHeads() {
		if _, err := p.lv.AddHead(n, "the log"); err != nil {
			return false // the verifier names the entry
		}
	}
	for _, e := range r.GetEntries() {
		if !p.lv.Add(grpcapi.LogEntryFrom(e)) {
			return false
		}
		p.v.CheckedEntries++
	}
	return true
}

func (p *pageVerifier) finish() audit.Result {
	if p.lv == nil {
		p.page(&baseav1.ExportLogResponse{})
	}
	if p.lv == nil {
		return audit.Result{}
	}
	res := p.lv.Finish()
	if !res.OK {
		p.v.fail(res.FirstBadEntry, res.Problem)
	}
	p.v.HeadsVerified += res.HeadsVerified
	p.v.TreeSize = p.lv.Size()
	return res
}

// savedState is what a verifier keeps between runs: the tree it verified
// (which runs ahead of the newest signed head between checkpoints) and the
// size of the newest signed head it saw, the floor for rollback checks.
type savedState struct {
	audit.State
	HeadSize int64  `json:"head_size,omitempty"`
	Note     string `json:"note,omitempty"`
}

func loadState(path string) (savedState, error) {
	var s savedState
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("state %s: %w", path, err)
	}
	return s, nil
}

func saveState(path string, st audit.State, headSize int64) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(savedState{State: st, HeadSize: headSize})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readWitnesses reads witnessed heads: one base64 signed head per line.
func readWitnesses(list string) ([][2]string, error) {
	var out [][2]string
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("witness file: %w", err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				out = append(out, [2]string{line, "witness " + filepath.Base(f)})
			}
		}
		_ = fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// verifyOnline checks the database log as an outside monitor: Base A's own
// bounded check (HMAC chain, checkpoints, purges, grants), then the
// Merkle log with public material, against the signed heads in the log,
// the witnessed heads and the last head this verifier verified.
func verifyOnline(ctx context.Context, client baseav1.AuditServiceClient, cfg AuditCLIConfig, full bool, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	key, err := readKey(cfg.VerifierKey)
	if err != nil {
		return fail(err)
	}
	saved, err := loadState(cfg.State)
	if err != nil {
		return fail(err)
	}
	kept := saved.State
	wit, err := readWitnesses(cfg.Witnesses)
	if err != nil {
		return fail(err)
	}
	v, err := verifyChainOnline(ctx, client, full)
	if err != nil {
		return fail(err)
	}
	start := kept
	if full {
		start = audit.State{}
	}
	pv := &pageVerifier{key: key, start: start, extra: wit, v: verdict{OK: true}}
	if kept.Size > 0 {
		// Starting over still holds the log to the head verified before.
		pv.trusted = append(pv.trusted, kept)
	}
	// "Nothing new" must not hide a log cut below the size verified before:
	// the last verified entry has to be there still (unless a signed
	// retention purge took it, which VerifyChain has checked).
	if !full && kept.Size > 0 && kept.Size > v.PurgedThrough {
		if err := probeLastVerified(ctx, client, pv, kept.Size); err != nil {
			return fail(err)
		}
	}
	if err := verifyPagesOnline(ctx, client, pv, start.Size); err != nil {
		return fail(err)
	}
	res := pv.finish()
	if pv.v.PurgedThrough == 0 {
		pv.v.PurgedThrough = v.PurgedThrough
	}
	pv.v.CheckpointsVerified, pv.v.GrantsChecked = v.CheckpointsVerified, v.GrantsChecked
	if !v.OK {
		pv.v.fail(v.FirstBadEntry, v.Problem)
	}
	headSize, err := checkNewestHead(ctx, client, pv, key, saved.HeadSize)
	if err != nil {
		return fail(err)
	}
	if pv.v.OK {
		if err := saveState(cfg.State, res.State, headSize); err != nil {
			return fail(err)
		}
	}
	return printVerdict(pv.v, stdout, stderr)
}

// verifyChainOnline runs Base A's own bounded check (from the start of the
// log when full) and returns its verdict.
func verifyChainOnline(ctx context.Context, client baseav1.AuditServiceClient, full bool) (verdict, error) {
	v := verdict{OK: true}
	from := int64(0)
	if full {
		from = 1
	}
	sr, err := client.VerifyChain(ctx, &baseav1.VerifyChainRequest{FromSeq: from})
	if err != nil {
		return v, err
	}
	v.CheckpointsVerified, v.GrantsChecked, v.PurgedThrough = sr.GetCheckpointsVerified(), sr.GetGrantsChecked(), sr.GetPurgedThrough()
	if !sr.GetOk() {
		v.fail(sr.GetFirstBadEntry(), sr.GetProblem())
	}
	return v, nil
}

// probeLastVerified fails pv when the entry at seq (the last one verified
// before) is gone.
func probeLastVerified(ctx context.Context, client baseav1.AuditServiceClient, pv *pageVerifier, seq int64) error {
	probe, err := client.ExportLog(ctx, &baseav1.ExportLogRequest{AfterSeq: seq - 1, PageSize: 1})
	if err != nil {
		return err
	}
	if es := probe.GetEntries(); len(es) == 0 || es[0].GetSeq() != seq {
		pv.v.fail(seq, fmt.Sprintf("truncated: the last verified entry (seq %d) is gone", seq))
	}
	return nil
}

// verifyPagesOnline feeds pv the exported log after seq after, page by
// page, until the last page or the first failure.
func verifyPagesOnline(ctx context.Context, client baseav1.AuditServiceClient, pv *pageVerifier, after int64) error {
	for pv.v.OK {
		page, err := client.ExportLog(ctx, &baseav1.ExportLogRequest{AfterSeq: after, PageSize: 5000})
		if err != nil {
			return err
		}
		if !pv.page(page) {
			break
		}
		if n := len(page.GetEntries()); n > 0 {
			after = page.GetEntries()[n-1].GetSeq()
		}
		if !page.GetMore() {
			break
		}
	}
	return nil
}

// checkNewestHead compares the log's newest signed head with the one
// verified before (savedHead, its size) and returns the head size to keep.
//
// A newest head older than the newest head already verified is a
// rollback. The verified tree itself is no floor: between checkpoints
// the log runs ahead of its newest signed head.
func checkNewestHead(ctx context.Context, client baseav1.AuditServiceClient, pv *pageVerifier, key note.Verifier, savedHead int64) (int64, error) {
	headSize := savedHead
	h, err := client.GetHead(ctx, &baseav1.GetHeadRequest{})
	switch {
	case status.Code(err) == codes.NotFound && savedHead > 0:
		pv.v.fail(pv.v.TreeSize+1, fmt.Sprintf("the log has no signed head any more (a head of size %d was verified before)", savedHead))
	case err != nil && savedHead > 0:
		// Once a head has been seen, verification needs the newest one.
		return headSize, fmt.Errorf("newest signed head: %w", err)
	case err == nil:
		if h.GetSize() < savedHead {
			pv.v.fail(pv.v.TreeSize+1, fmt.Sprintf("the log's newest head (size %d) is older than the head already verified (size %d)", h.GetSize(), savedHead))
		} else if hd, err := audit.OpenHead(h.GetNote(), key); err == nil && hd.Size == h.GetSize() && hd.Size <= pv.v.TreeSize {
			headSize = hd.Size
		}
	}
	return headSize, nil
}

// verifyOffline verifies an exported log (export-log) with the public
// verifier key only.
func verifyOffline(file, publicKey, witnesses string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "strata-audit:", err)
		return 2
	}
	key, err := readKey(publicKey)
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = f.Close() }()
	wit, err := readWitnesses(witnesses)
	if err != nil {
		return fail(err)
	}
	pv := &pageVerifier{key: key, v: verdict{OK: true}, extra: wit}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		var page baseav1.ExportLogResponse
		if err := protojson.Unmarshal(sc.Bytes(), &page); err != nil {
			return fail(fmt.Errorf("%s: not an exported log: %w", file, err))
		}
		if !pv.page(&page) {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fail(err)
	}
	pv.finish()
	return printVerdict(pv.v, stdout, stderr)
}
