// Package interop holds the tests that run the real upstream engines against
// ppml: Apache Spark's spark-submit (local and Kubernetes cluster mode),
// parquet-mr's modular encryption, and, where Maven Central serves them,
// BigDL PPML's own classes. The engines are installed by scripts/engines.sh
// (cached); the small JVM programs the tests run are in java/ and compiled by
// the tests. docs/compatibility.md lists the versions and what is excluded.
package interop
