// Package archtest holds the test that keeps the import graph layered (see
// docs/architecture.md): a package imports only packages of its own layer
// or lower ones, and every package has a layer.
package archtest
