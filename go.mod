module github.com/pfcarp/pfcarp

go 1.26.8
