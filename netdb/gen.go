package netdb

//go:generate go run ./internal/gennetdb -services data/services -protocols data/protocols -o tables_gen.go
