package lab

import "context"

func benchSync(ctx context.Context, b *Bench, r *Report) error { return nil }
