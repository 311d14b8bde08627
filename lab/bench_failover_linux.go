package lab

import "context"

type failFault struct{ name string }

var failoverFaults = []failFault{{"cable pull"}, {"SIGKILL"}, {"graceful stop"}, {"failback"}}
var failoverRates = []int{300, 1000}

func failName(impl, fault string, rate int, what string) string { return "" }

func benchFailover(ctx context.Context, b *Bench, r *Report) error { return nil }
