module github.com/nextauth/traefik-nextauth

go 1.22
