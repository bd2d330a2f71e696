package auth

import "sync"

// inFlight marks sources with a cold check running; done is closed when
// it ends.
type inFlight struct {
	mu  sync.Mutex
	set map[string]chan struct{}
}

// take marks src busy, or returns the channel closed when its current
// check ends.
func (f *inFlight) take(src string) (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set == nil {
		f.set = map[string]chan struct{}{}
	}
	if ch, busy := f.set[src]; busy {
		return false, ch
	}
	f.set[src] = make(chan struct{})
	return true, nil
}

func (f *inFlight) give(src string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.set[src])
	delete(f.set, src)
}
