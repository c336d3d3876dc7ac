package wbxml

// The code page table is generated from the project's checked token list
// (MS-ASWBXML 2.1.2.1, all pages with their legacy 2.x tokens).
//go:generate go run ./internal/gen -in ../../shared/spec/aswbxml-codepages.tsv -out tables.go
