module github.com/nextauth/bench-passthrough

go 1.22
