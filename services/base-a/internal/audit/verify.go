package audit

import (
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
)

// LogEntry is one entry of the log as a verifier receives it: the stored
// fields, and the tree hashes stored with it (from
// tlog.StoredHashIndex(0, Seq-1)); Deleted when its chain link survives
// but the entry does not.
type LogEntry struct {
	Seq     int64
	Row     Row
	CPFEnc  []byte
	Stored  []tlog.Hash
	Deleted bool
}

// State is what a verifier keeps between runs: the last verified tree.
type State struct {
	Size int64               `json:"size"`
	Root tlog.Hash           `json:"root"`
	Edge map[int64]tlog.Hash `json:"edge"`
}

// Result is a verification's verdict.
type Result struct {
	OK            bool
	Checked       int64 // entries checked in this run
	FirstBadEntry int64
	Problem       string
	HeadsVerified int64
	State         State // the tree verified so far (valid only while OK)
}

type knownHead struct {
	root   tlog.Hash
	source string
}

// LogVerifier checks a log from a trusted starting state: every entry in
// sequence, every stored tree hash, every signed head it is given (from
// the log itself, from witnesses, from its own past runs). It needs the
// verifier key only: public material.
type LogVerifier struct {
	key        note.Verifier
	tree       *Tree
	heads      map[int64][]knownHead
	lastHead   int64 // size of the last head matched
	res        Result
	sinceprune int
}

// NewLogVerifier starts from st (zero State: the empty log).
func NewLogVerifier(key note.Verifier, st State) (*LogVerifier, error) {
	v := &LogVerifier{key: key, tree: NewTree(st.Size, st.Edge), heads: map[int64][]knownHead{}, lastHead: st.Size, res: Result{OK: true}}
	if st.Size > 0 {
		root, err := v.tree.Root()
		if err != nil || root != st.Root {
			return nil, fmt.Errorf("starting state at %d does not hash to its root", st.Size)
		}
	}
	return v, nil
}

func (v *LogVerifier) bad(seq int64, problem string) {
	if v.res.OK {
		v.res.OK, v.res.FirstBadEntry, v.res.Problem = false, seq, problem
	}
}

// OK reports whether nothing is wrong so far.
func (v *LogVerifier) OK() bool { return v.res.OK }

// Size is the number of entries verified.
func (v *LogVerifier) Size() int64 { return v.tree.Size() }

// AddHead opens a signed head (from source, e.g. "the log", "witness",
// "last verified") and remembers it to check when the tree reaches its
// size. A bad signature fails the verification.
func (v *LogVerifier) AddHead(msg []byte, source string) (Head, error) {
	h, err := OpenHead(msg, v.key)
	if err != nil {
		// Name the entry the forged head claims to cover, if it says.
		at := v.tree.Size() + 1
		if n, ok := checkpoint.ClaimedSize(msg); ok && n > v.tree.Size() {
			at = n
		}
		v.bad(at, fmt.Sprintf("a signed head from %s does not verify (forged head): %v", source, err))
		return h, err
	}
	v.AddTrustedHead(h.Size, h.Root, source)
	return h, nil
}

// AddTrustedHead remembers a head whose signature was already checked
// (or which this verifier computed itself on an earlier run).
func (v *LogVerifier) AddTrustedHead(size int64, root tlog.Hash, source string) {
	if size < v.tree.Size() {
		return // before where this run starts: checked by the run that passed it
	}
	if size == v.tree.Size() && size > 0 {
		if r, _ := v.tree.Root(); r != root {
			v.bad(size, fmt.Sprintf("the head of size %d from %s is inconsistent with the verified log", size, source))
		}
		return
	}
	v.heads[size] = append(v.heads[size], knownHead{root: root, source: source})
}

// Add checks the next entry. It returns false once something is wrong.
func (v *LogVerifier) Add(e LogEntry) bool {
	if !v.res.OK {
		return false
	}
	want := v.tree.Size() + 1
	switch {
	case e.Seq > want:
		v.bad(want, fmt.Sprintf("entries %d to %d are missing from the log", want, e.Seq-1))
		return false
	case e.Seq < want:
		v.bad(want, fmt.Sprintf("entry %d appears twice or out of order", e.Seq))
		return false
	case e.Deleted:
		v.bad(e.Seq, "entry deleted")
		return false
	}
	data := LeafData(e.Seq, e.Row, e.CPFEnc)
	hs, err := v.tree.Append(data)
	if err != nil {
		v.bad(e.Seq, "tree: "+err.Error())
		return false
	}
	if e.Stored != nil {
		if len(e.Stored) != len(hs) {
			v.bad(e.Seq, "the tree hashes stored with the entry are missing or extra")
			return false
		}
		if e.Stored[0] != hs[0] {
			v.bad(e.Seq, "entry altered")
			return false
		}
		for i := range hs {
			if e.Stored[i] != hs[i] {
				v.bad(e.Seq, "a tree node stored with the entry is forged")
				return false
			}
		}
	}
	v.res.Checked++
	if hs := v.heads[e.Seq]; len(hs) > 0 {
		root, err := v.tree.Root()
		if err != nil {
			v.bad(e.Seq, "tree: "+err.Error())
			return false
		}
		for _, h := range hs {
			if h.root != root {
				v.bad(v.lastHead+1, fmt.Sprintf("entries %d to %d do not hash to the head of size %d from %s (altered entries or a forged head)",
					v.lastHead+1, e.Seq, e.Seq, h.source))
				return false
			}
			v.res.HeadsVerified++
		}
		delete(v.heads, e.Seq)
		v.lastHead = e.Seq
	}
	if v.sinceprune++; v.sinceprune >= 4096 {
		v.tree.Prune()
		v.sinceprune = 0
	}
	return true
}

// Finish checks that no head is beyond the end of the log (a cut tail)
// and returns the verdict.
func (v *LogVerifier) Finish() Result {
	if v.res.OK && len(v.heads) > 0 {
		sizes := make([]int64, 0, len(v.heads))
		for s := range v.heads {
			sizes = append(sizes, s)
		}
		sort.Slice(sizes, func(i, j int) bool { return sizes[i] > sizes[j] })
		h := v.heads[sizes[0]][0]
		v.bad(v.tree.Size()+1, fmt.Sprintf("log truncated: the head of size %d from %s is signed but the log ends at %d",
			sizes[0], h.source, v.tree.Size()))
	}
	if v.res.OK {
		root, _ := v.tree.Root()
		v.res.State = State{Size: v.tree.Size(), Root: root, Edge: v.tree.Edge()}
	}
	return v.res
}
