package auth

import "time"

// withDefaults is o with every option left unset (or not positive) at its
// default.
func (o Options) withDefaults() Options {
	o.CacheTTL = positiveOr(o.CacheTTL, 60*time.Second)
	if o.RefreshAfter <= 0 || o.RefreshAfter > o.CacheTTL {
		o.RefreshAfter = o.CacheTTL / 2
	}
	o.MaxCold = positiveOr(o.MaxCold, 2)
	o.ColdWait = positiveOr(o.ColdWait, 2*time.Second)
	o.FreeFailures = positiveOr(o.FreeFailures, 3)
	o.ThrottleBase = positiveOr(o.ThrottleBase, time.Second)
	o.ThrottleMax = positiveOr(o.ThrottleMax, time.Minute)
	o.ThrottleHalfLife = positiveOr(o.ThrottleHalfLife, 5*time.Minute)
	o.SourceFailureLimit = positiveOr(o.SourceFailureLimit, 20)
	o.SourceWindow = positiveOr(o.SourceWindow, time.Minute)
	if o.Params == (Params{}) {
		o.Params = DefaultParams
	}
	return o
}

// positiveOr is v when it is positive, else d (an option's default).
func positiveOr[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}
