module github.com/lanasr/lanasr/migrations

go 1.24
