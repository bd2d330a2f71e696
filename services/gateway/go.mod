module github.com/strata-bureau/strata/services/gateway

go 1.26.0

replace (
	github.com/strata-bureau/strata/pkg => ../../pkg
	github.com/strata-bureau/strata/proto => ../../proto
)
