package netdb

//go:generate go run ./internal/gennetdb -services data/services,data/services.freebsd12,data/services.openbsd -protocols data/protocols -o tables_gen.go
