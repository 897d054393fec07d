module github.com/sipha/sipha

go 1.26
