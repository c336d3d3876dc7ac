package wbxml

// DiffTree is diffTree for the external tests (golden_test.go).
var DiffTree = diffTree
