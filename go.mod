module github.com/herald-dev/herald

go 1.26.8
